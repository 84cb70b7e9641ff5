"""The key wrappers alone, around the real in-memory back end: counting counts, the zone
gate refuses before the store, retry waits and then fails closed."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

import pytest

from zoneapp.keys import (
    DecryptionError,
    KeyCalls,
    KeyUnavailableError,
    MemoryKeyProvider,
    MemoryKeyStore,
    UnknownKeyVersionError,
    ZoneNotPermittedError,
)
from zoneapp.keys.envelope import dek_aad
from zoneapp.keys.retry import Backoff
from zoneapp.keys.wrappers import CountingKeyProvider, RetryingKeyProvider, ZoneGate

ZONE, OTHER = "confidential", "restricted"


@pytest.fixture
async def store() -> MemoryKeyStore:
    store = MemoryKeyStore()
    await MemoryKeyProvider(store).provision([ZONE, OTHER])
    return store


class Sleeps:
    """Records the waits instead of sleeping; can bring the store back after some."""

    def __init__(self, store: MemoryKeyStore | None = None, back_after: int = 0) -> None:
        self.delays: list[float] = []
        self.store = store
        self.back_after = back_after

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.store is not None and len(self.delays) == self.back_after:
            self.store.available = True


# -- counting ----------------------------------------------------------------------------------


async def test_counting_counts_each_operation_that_reaches_the_store(
    store: MemoryKeyStore,
) -> None:
    calls = KeyCalls()
    counting = CountingKeyProvider(MemoryKeyProvider(store), calls)
    await counting.open([ZONE])
    await counting.ping()
    await counting.close()
    await counting.open([ZONE])
    assert calls.total == 0  # open, close and ping are not key operations
    version = await counting.current_kek_version(ZONE)
    dek = os.urandom(32)
    wrapped = await counting.wrap_dek(ZONE, version, dek, dek_aad(ZONE, version))
    assert await counting.unwrap_dek(ZONE, version, wrapped, dek_aad(ZONE, version)) == dek
    for purpose in (b"a", b"b", b"a"):
        await counting.derive_hmac_key(ZONE, purpose)
    with pytest.raises(UnknownKeyVersionError):  # failures count: they reached the store
        await counting.wrap_dek(ZONE, 9, dek, dek_aad(ZONE, 9))
    assert calls.by_operation == {"version": 1, "wrap": 2, "unwrap": 1, "derive": 3}
    assert calls.total == counting.hsm_calls == 7
    assert "'wrap': 2" in repr(calls)


async def test_two_counters_share_one_tally(store: MemoryKeyStore) -> None:
    calls = KeyCalls()
    a = CountingKeyProvider(MemoryKeyProvider(store), calls)
    b = CountingKeyProvider(MemoryKeyProvider(store), calls)
    await a.current_kek_version(ZONE)
    await b.current_kek_version(OTHER)
    assert calls.by_operation == {"version": 2}
    assert CountingKeyProvider(MemoryKeyProvider(store)).calls.total == 0  # its own by default


# -- zone gate -------------------------------------------------------------------------------


async def test_zone_gate_refuses_an_unopened_zone_without_calling_the_inner_provider(
    store: MemoryKeyStore,
) -> None:
    calls = KeyCalls()
    gate = ZoneGate(CountingKeyProvider(MemoryKeyProvider(store), calls))
    dek = os.urandom(32)
    refused: list[Callable[[], Awaitable[object]]] = [
        lambda: gate.current_kek_version(ZONE),
        lambda: gate.wrap_dek(ZONE, 1, dek, dek_aad(ZONE, 1)),
        lambda: gate.unwrap_dek(ZONE, 1, b"x" * 60, dek_aad(ZONE, 1)),
        lambda: gate.derive_hmac_key(ZONE, b"p"),
    ]
    for call in refused:  # before open: every zone
        with pytest.raises(ZoneNotPermittedError, match="not open"):
            await call()
    await gate.open([OTHER])
    assert gate.opened_zones == {OTHER}
    for call in refused:  # open, but for another zone
        with pytest.raises(ZoneNotPermittedError, match="not opened by this process"):
            await call()
    assert calls.total == 0
    assert await gate.current_kek_version(OTHER) == 1
    await gate.close()
    assert gate.opened_zones == frozenset()
    with pytest.raises(ZoneNotPermittedError):
        await gate.current_kek_version(OTHER)
    assert calls.total == 1
    with pytest.raises(ValueError, match="invalid zone name"):
        await gate.derive_hmac_key("bad:zone", b"p")


async def test_zone_gate_opens_nothing_when_the_store_refuses(store: MemoryKeyStore) -> None:
    store.available = False
    gate = ZoneGate(MemoryKeyProvider(store))
    with pytest.raises(KeyUnavailableError):
        await gate.open([ZONE])
    assert gate.opened_zones == frozenset()
    with pytest.raises(ValueError):
        await gate.open(["", ZONE])
    assert "opened=[]" in repr(gate)


# -- retry ---------------------------------------------------------------------------------


async def test_retry_rides_out_a_blip(
    store: MemoryKeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    calls = KeyCalls()
    sleeps = Sleeps(store, back_after=2)
    retrying = RetryingKeyProvider(
        CountingKeyProvider(MemoryKeyProvider(store), calls), sleep=sleeps
    )
    store.available = False
    with caplog.at_level(logging.WARNING, logger="zoneapp.keys.wrappers"):
        assert await retrying.current_kek_version(ZONE) == 1
    assert sleeps.delays == [0.05, 0.1]
    assert calls.by_operation == {"version": 3}  # every attempt reached the store
    assert "KEK version lookup failed" in caplog.text and "retry 2 in 0.10s" in caplog.text


async def test_retry_gives_up_and_fails_closed(store: MemoryKeyStore) -> None:
    calls = KeyCalls()
    sleeps = Sleeps()
    retrying = RetryingKeyProvider(
        CountingKeyProvider(MemoryKeyProvider(store), calls),
        Backoff(first=0.2, maximum=0.3, attempts=4),
        sleep=sleeps,
    )
    store.available = False
    dek = os.urandom(32)
    with pytest.raises(KeyUnavailableError):
        await retrying.wrap_dek(ZONE, 1, dek, dek_aad(ZONE, 1))
    assert sleeps.delays == [0.2, 0.3, 0.3]  # 4 attempts, capped backoff, then the error
    assert calls.by_operation == {"wrap": 4}
    with pytest.raises(KeyUnavailableError):  # a health probe is answered at once
        await retrying.ping()
    assert len(sleeps.delays) == 3


async def test_retry_does_not_retry_answers(store: MemoryKeyStore) -> None:
    """A tampered key, an unknown version or a refused zone is an answer, not an outage."""
    calls = KeyCalls()
    sleeps = Sleeps()
    retrying = RetryingKeyProvider(
        ZoneGate(CountingKeyProvider(MemoryKeyProvider(store), calls)), sleep=sleeps
    )
    await retrying.open([ZONE])
    wrapped = await retrying.wrap_dek(ZONE, 1, os.urandom(32), dek_aad(ZONE, 1))
    with pytest.raises(DecryptionError):
        await retrying.unwrap_dek(ZONE, 1, wrapped, b"wrong aad")
    with pytest.raises(UnknownKeyVersionError):
        await retrying.unwrap_dek(ZONE, 7, wrapped, dek_aad(ZONE, 7))
    with pytest.raises(ZoneNotPermittedError):
        await retrying.derive_hmac_key(OTHER, b"p")
    assert sleeps.delays == []
    assert calls.by_operation == {"wrap": 1, "unwrap": 2}
