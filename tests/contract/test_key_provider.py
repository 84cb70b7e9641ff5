"""The contract every key back end must pass: MemoryKeyProvider and Pkcs11KeyProvider on a
real SoftHSM2 token, the same checks on both (runtime API, admin API, and the runtime stack
of wrappers around each)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from tests.contract.conftest import USER_PIN, WRONG_PIN, KeyBackendKind, Zones
from zoneapp.keys import (
    DecryptionError,
    KeyBackend,
    KeyCalls,
    KeyLoginError,
    KeyProviderError,
    KeyUnavailableError,
    Secret,
    UnknownKeyVersionError,
    ZoneNotPermittedError,
)
from zoneapp.keys.wrappers import ZoneGate, runtime_stack

MakeProvider = Callable[..., KeyBackend]


def aad(zone: str, version: int) -> bytes:
    return f"zoneapp/dek/v1|{zone}|{version}".encode()


async def admin(make_provider: MakeProvider, *zones: str) -> KeyBackend:
    provider = make_provider()
    await provider.provision(zones)
    await provider.open(zones)
    return provider


def assert_no_secret(text: str, *secrets: bytes) -> None:
    assert USER_PIN not in text and WRONG_PIN not in text
    for s in secrets:
        assert s.hex() not in text and repr(s) not in text


async def test_provision_is_idempotent(make_provider: MakeProvider, zones: Zones) -> None:
    provider = make_provider()
    z = [zones.confidential, zones.restricted]
    await provider.provision(z)
    await provider.open(z)
    dek = os.urandom(32)
    wrapped = await provider.wrap_dek(zones.confidential, 1, dek, aad(zones.confidential, 1))
    hmac_key = await provider.derive_hmac_key(zones.restricted, b"p")
    # Provisioning again (another worker's start-up, a rerun) creates nothing new.
    await make_provider().provision(z)
    fresh = make_provider()
    await fresh.open(z)
    assert await fresh.current_kek_version(zones.confidential) == 1
    assert await fresh.current_kek_version(zones.restricted) == 1
    assert await fresh.unwrap_dek(zones.confidential, 1, wrapped, aad(zones.confidential, 1)) == dek
    assert await fresh.derive_hmac_key(zones.restricted, b"p") == hmac_key
    # ... nor after a rotation: provisioning never touches later versions.
    assert await provider.rotate_kek(zones.confidential) == 2
    await provider.provision(z)
    assert await fresh.current_kek_version(zones.confidential) == 2


async def test_first_use_logs_in_without_open(make_provider: MakeProvider, zones: Zones) -> None:
    """A plain back end opens its session on first use; the PIN is checked then too."""
    await make_provider().provision([zones.confidential])
    provider = make_provider()
    assert await provider.current_kek_version(zones.confidential) == 1
    wrong = make_provider(Secret(WRONG_PIN))
    with pytest.raises(KeyUnavailableError) as info:
        await wrong.wrap_dek(zones.confidential, 1, os.urandom(32), aad(zones.confidential, 1))
    assert_no_secret(str(info.value))


async def test_wrap_unwrap_roundtrip(make_provider: MakeProvider, zones: Zones) -> None:
    provider = await admin(make_provider, zones.confidential)
    dek = os.urandom(32)
    wrapped = await provider.wrap_dek(zones.confidential, 1, dek, aad(zones.confidential, 1))
    assert len(wrapped) == 12 + 32 + 16
    assert dek not in wrapped
    again = await provider.wrap_dek(zones.confidential, 1, dek, aad(zones.confidential, 1))
    assert again != wrapped  # fresh nonce per wrap
    for blob in (wrapped, again):
        assert (
            await provider.unwrap_dek(zones.confidential, 1, blob, aad(zones.confidential, 1))
            == dek
        )


async def test_wrong_aad_fails(make_provider: MakeProvider, zones: Zones) -> None:
    provider = await admin(make_provider, zones.confidential)
    dek = os.urandom(32)
    wrapped = await provider.wrap_dek(zones.confidential, 1, dek, aad(zones.confidential, 1))
    for wrong in (aad(zones.confidential, 2), aad(zones.restricted, 1), b""):
        with pytest.raises(DecryptionError) as info:
            await provider.unwrap_dek(zones.confidential, 1, wrapped, wrong)
        assert_no_secret(str(info.value), dek)
    # The session is still usable after a failed GCM decrypt.
    assert (
        await provider.unwrap_dek(zones.confidential, 1, wrapped, aad(zones.confidential, 1)) == dek
    )


async def test_tampered_wrapped_dek_fails(make_provider: MakeProvider, zones: Zones) -> None:
    provider = await admin(make_provider, zones.confidential)
    z = zones.confidential
    dek = os.urandom(32)
    wrapped = await provider.wrap_dek(z, 1, dek, aad(z, 1))
    for i in range(len(wrapped)):  # nonce, ciphertext and tag bytes alike
        tampered = bytearray(wrapped)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            await provider.unwrap_dek(z, 1, bytes(tampered), aad(z, 1))
    for truncated in (wrapped[:-1], wrapped[:20], b""):
        with pytest.raises(DecryptionError):
            await provider.unwrap_dek(z, 1, truncated, aad(z, 1))
    with pytest.raises(DecryptionError):
        await provider.unwrap_dek(z, 1, wrapped + b"\x00", aad(z, 1))


async def test_dek_under_one_zone_does_not_unwrap_under_another(
    make_provider: MakeProvider, zones: Zones
) -> None:
    provider = await admin(make_provider, zones.confidential, zones.restricted)
    wrapped = await provider.wrap_dek(zones.restricted, 1, os.urandom(32), aad(zones.restricted, 1))
    # Even with the AAD rewritten to match, a different zone means a different KEK.
    with pytest.raises(DecryptionError):
        await provider.unwrap_dek(zones.confidential, 1, wrapped, aad(zones.confidential, 1))


# -- the runtime stack around each back end: zone gate, retry, counting -----------------------


def stacked(provider: KeyBackend) -> tuple[ZoneGate, KeyCalls]:
    calls = KeyCalls()
    return runtime_stack(provider, calls=calls), calls


async def test_stack_refuses_zones_until_opened(make_provider: MakeProvider, zones: Zones) -> None:
    await make_provider().provision([zones.confidential])
    gate, calls = stacked(make_provider())
    with pytest.raises(ZoneNotPermittedError):
        await gate.wrap_dek(zones.confidential, 1, os.urandom(32), b"x")
    assert calls.total == 0
    await gate.open([zones.confidential])
    assert gate.opened_zones == {zones.confidential}
    assert await gate.current_kek_version(zones.confidential) == 1
    await gate.close()
    await gate.close()  # idempotent
    with pytest.raises(ZoneNotPermittedError):
        await gate.current_kek_version(zones.confidential)
    await gate.open([zones.confidential])  # and it can be reopened
    assert await gate.current_kek_version(zones.confidential) == 1
    assert calls.by_operation == {"version": 2}


async def test_lower_zone_process_cannot_use_higher_zone_keys(
    make_provider: MakeProvider, zones: Zones
) -> None:
    higher = await admin(make_provider, zones.confidential, zones.restricted)
    dek = os.urandom(32)
    wrapped = await higher.wrap_dek(zones.restricted, 1, dek, aad(zones.restricted, 1))

    lower, calls = stacked(make_provider())
    with pytest.raises(ZoneNotPermittedError):  # not open at all yet
        await lower.unwrap_dek(zones.restricted, 1, wrapped, aad(zones.restricted, 1))
    await lower.open([zones.confidential])
    with pytest.raises(ZoneNotPermittedError) as info:
        await lower.unwrap_dek(zones.restricted, 1, wrapped, aad(zones.restricted, 1))
    assert zones.restricted in str(info.value)
    assert_no_secret(str(info.value), dek)
    with pytest.raises(ZoneNotPermittedError):
        await lower.wrap_dek(zones.restricted, 1, os.urandom(32), aad(zones.restricted, 1))
    with pytest.raises(ZoneNotPermittedError):
        await lower.derive_hmac_key(zones.restricted, b"purpose")
    with pytest.raises(ZoneNotPermittedError):
        await lower.current_kek_version(zones.restricted)
    assert calls.total == 0  # refused before reaching the key store
    # Its own zone works.
    own = await lower.wrap_dek(zones.confidential, 1, dek, aad(zones.confidential, 1))
    assert await higher.unwrap_dek(zones.confidential, 1, own, aad(zones.confidential, 1)) == dek
    assert calls.by_operation == {"wrap": 1}


async def test_stack_counts_one_call_per_key_operation(
    make_provider: MakeProvider, zones: Zones
) -> None:
    z = zones.confidential
    await admin(make_provider, z)
    gate, calls = stacked(make_provider())
    await gate.open([z])
    await gate.ping()
    assert calls.total == 0  # open, login and ping are not key operations
    version = await gate.current_kek_version(z)
    dek = os.urandom(32)
    wrapped = await gate.wrap_dek(z, version, dek, aad(z, version))
    assert await gate.unwrap_dek(z, version, wrapped, aad(z, version)) == dek
    await gate.derive_hmac_key(z, b"p")
    await gate.derive_hmac_key(z, b"q")
    with pytest.raises(DecryptionError):  # a failed operation reached the store: counted
        await gate.unwrap_dek(z, version, wrapped, b"wrong")
    assert calls.by_operation == {"version": 1, "wrap": 1, "unwrap": 2, "derive": 2}


async def test_stack_gives_up_on_an_unreachable_store(
    backend: KeyBackendKind, zones: Zones
) -> None:
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    calls = KeyCalls()
    gate = runtime_stack(backend.unreachable_provider(), calls=calls, sleep=sleep)
    try:
        with pytest.raises(KeyUnavailableError) as info:
            await gate.open([zones.confidential])
        assert sleeps == [0.05, 0.1]  # three attempts, then fail closed
        assert_no_secret(str(info.value))
        assert gate.opened_zones == frozenset()
    finally:
        await gate.close()


# -- the plain back end ------------------------------------------------------------------------


async def test_rotate_keeps_old_versions(make_provider: MakeProvider, zones: Zones) -> None:
    z = zones.confidential
    provider = await admin(make_provider, z)
    worker = make_provider()
    await worker.open([z])
    assert await worker.current_kek_version(z) == 1
    dek1 = os.urandom(32)
    old = await worker.wrap_dek(z, 1, dek1, aad(z, 1))

    assert await provider.rotate_kek(z) == 2
    assert await provider.current_kek_version(z) == 2
    assert await worker.current_kek_version(z) == 2  # seen by another "process" on re-read
    assert await worker.unwrap_dek(z, 1, old, aad(z, 1)) == dek1

    dek2 = os.urandom(32)
    new = await worker.wrap_dek(z, 2, dek2, aad(z, 2))
    assert await provider.unwrap_dek(z, 2, new, aad(z, 2)) == dek2
    with pytest.raises(DecryptionError):  # version 1 KEK cannot open a version 2 wrap
        await provider.unwrap_dek(z, 1, new, aad(z, 2))
    assert await provider.rotate_kek(z) == 3


async def test_rotate_is_an_admin_operation(make_provider: MakeProvider, zones: Zones) -> None:
    await admin(make_provider, zones.restricted)
    provider = make_provider()
    assert await provider.rotate_kek(zones.restricted) == 2  # no open() needed
    with pytest.raises(UnknownKeyVersionError):
        await provider.rotate_kek(zones.internal)  # never provisioned


async def test_unknown_versions(make_provider: MakeProvider, zones: Zones) -> None:
    z = zones.confidential
    provider = await admin(make_provider, z)
    wrapped = await provider.wrap_dek(z, 1, os.urandom(32), aad(z, 1))
    for version in (0, 2, 99):
        with pytest.raises(UnknownKeyVersionError):
            await provider.unwrap_dek(z, version, wrapped, aad(z, version))
        with pytest.raises(UnknownKeyVersionError):
            await provider.wrap_dek(z, version, os.urandom(32), aad(z, version))
    await provider.open([z, zones.internal])
    with pytest.raises(UnknownKeyVersionError):
        await provider.current_kek_version(zones.internal)
    with pytest.raises(UnknownKeyVersionError):
        await provider.derive_hmac_key(zones.internal, b"p")


async def test_derive_hmac_key_is_deterministic(make_provider: MakeProvider, zones: Zones) -> None:
    a = await admin(make_provider, zones.confidential, zones.restricted)
    b = make_provider()
    await b.open([zones.confidential, zones.restricted])
    k1 = await a.derive_hmac_key(zones.confidential, b"zoneapp/hmac/v1/email")
    assert len(k1) == 32
    assert await b.derive_hmac_key(zones.confidential, b"zoneapp/hmac/v1/email") == k1
    assert await a.derive_hmac_key(zones.confidential, b"zoneapp/hmac/v1/email") == k1
    assert await b.derive_hmac_key(zones.restricted, b"zoneapp/hmac/v1/email") != k1
    assert await b.derive_hmac_key(zones.confidential, b"zoneapp/hmac/v1/phone") != k1
    # "Restart": close and reopen gives the same working key.
    await b.close()
    await b.open([zones.confidential])
    assert await b.derive_hmac_key(zones.confidential, b"zoneapp/hmac/v1/email") == k1


async def test_kek_is_not_extractable(
    make_provider: MakeProvider, backend: KeyBackendKind, zones: Zones
) -> None:
    provider = await admin(make_provider, zones.restricted)
    await provider.rotate_kek(zones.restricted)
    backend.assert_kek_not_extractable(zones.restricted, 1)
    backend.assert_kek_not_extractable(zones.restricted, 2)


async def test_repr_shows_no_pin(make_provider: MakeProvider, zones: Zones) -> None:
    provider = await admin(make_provider, zones.confidential)
    gate, _ = stacked(provider)
    for text in (repr(provider), str(provider), f"{provider}", repr(gate)):
        assert_no_secret(text)
    secret = Secret(USER_PIN)
    assert USER_PIN not in repr(secret) and USER_PIN not in f"{secret}"


async def test_wrong_pin_is_key_unavailable(make_provider: MakeProvider, zones: Zones) -> None:
    # Nobody logged in yet: the token itself rejects the PIN.
    wrong = make_provider(Secret(WRONG_PIN))
    with pytest.raises(KeyUnavailableError) as info:
        await wrong.open([zones.confidential])
    assert "PinIncorrect" in str(info.value)
    assert_no_secret(str(info.value))
    assert_no_secret(repr(info.value))
    # Another provider in this process is logged in: a wrong PIN still does not get in.
    good = await admin(make_provider, zones.confidential)
    wrong2 = make_provider(Secret(WRONG_PIN))
    with pytest.raises(KeyUnavailableError) as info:
        await wrong2.open([zones.confidential])
    assert "PinIncorrect" in str(info.value)
    assert_no_secret(str(info.value))
    with pytest.raises(KeyUnavailableError):
        await wrong2.provision([zones.internal])
    with pytest.raises(KeyUnavailableError):
        await wrong2.ping()
    await good.ping()


async def test_a_refused_pin_is_tried_once(make_provider: MakeProvider, zones: Zones) -> None:
    """HSMs lock a token after a few wrong PINs: the runtime stack never retries a login."""
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    gate = runtime_stack(make_provider(Secret(WRONG_PIN)), sleep=sleep)
    with pytest.raises(KeyLoginError, match="PinIncorrect"):
        await gate.open([zones.confidential])
    good = await admin(make_provider, zones.confidential)  # now with a login to differ from
    with pytest.raises(KeyLoginError, match="PinIncorrect"):
        await gate.open([zones.confidential])
    assert sleeps == []
    await good.ping()


async def test_unreachable_store_is_key_unavailable(backend: KeyBackendKind, zones: Zones) -> None:
    provider = backend.unreachable_provider()
    try:
        with pytest.raises(KeyUnavailableError) as info:
            await provider.open([zones.confidential])
        assert_no_secret(str(info.value))
        with pytest.raises(KeyUnavailableError):
            await provider.ping()
        with pytest.raises(KeyUnavailableError):
            await provider.provision([zones.confidential])
    finally:
        await provider.close()


async def test_rejects_bad_input(make_provider: MakeProvider, zones: Zones) -> None:
    provider = await admin(make_provider, zones.confidential)
    with pytest.raises(KeyProviderError):
        await provider.wrap_dek(zones.confidential, 1, os.urandom(16), b"")
    with pytest.raises(ValueError):
        await provider.provision(["bad:zone"])
    with pytest.raises(ValueError):
        await provider.open(["", "x"])


async def test_closed_provider_can_reopen(make_provider: MakeProvider, zones: Zones) -> None:
    provider = await admin(make_provider, zones.confidential)
    await provider.close()
    await provider.close()  # idempotent
    await provider.open([zones.confidential])
    assert await provider.current_kek_version(zones.confidential) == 1


async def test_concurrent_calls(make_provider: MakeProvider, zones: Zones) -> None:
    z = zones.confidential
    provider = await admin(make_provider, z)
    await provider.current_kek_version(z)

    async def roundtrip() -> None:
        dek = os.urandom(32)
        wrapped = await provider.wrap_dek(z, 1, dek, aad(z, 1))
        assert await provider.unwrap_dek(z, 1, wrapped, aad(z, 1)) == dek

    await asyncio.gather(*(roundtrip() for _ in range(64)))
