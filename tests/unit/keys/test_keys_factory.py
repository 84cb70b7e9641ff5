"""build_key_provider / build_key_admin: configuration URL to provider, with clear errors."""

from __future__ import annotations

import logging

import pytest

from zoneapp.keys import (
    KeyCalls,
    MemoryKeyProvider,
    Secret,
    build_key_admin,
    build_key_backend,
    build_key_provider,
)
from zoneapp.keys.pkcs11 import Pkcs11KeyProvider
from zoneapp.keys.wrappers import CountingKeyProvider, RetryingKeyProvider, ZoneGate

PIN = Secret("1234-factory")


def test_memory() -> None:
    a = build_key_admin("memory://", None, development=True)
    b = build_key_admin("memory://", None, development=True)
    assert isinstance(a, MemoryKeyProvider) and isinstance(b, MemoryKeyProvider)
    assert a.store is not b.store  # process-local, private


def test_named_memory_store_is_shared() -> None:
    a = build_key_admin("memory://factory-test", None, development=True)
    b = build_key_admin("memory://factory-test", None, development=True)
    assert isinstance(a, MemoryKeyProvider) and isinstance(b, MemoryKeyProvider)
    assert a.store is b.store


async def test_runtime_provider_is_the_wrapped_back_end() -> None:
    """The one composition: zone gate -> retry -> counting -> back end, counting into calls."""
    calls = KeyCalls()
    gate = build_key_provider("memory://factory-stack", None, development=True, calls=calls)
    assert isinstance(gate, ZoneGate)
    retry = gate.inner
    assert isinstance(retry, RetryingKeyProvider)
    counting = retry.inner
    assert isinstance(counting, CountingKeyProvider) and counting.calls is calls
    backend = counting.inner
    assert isinstance(backend, MemoryKeyProvider)
    await build_key_admin("memory://factory-stack", None, development=True).provision(["z"])
    await gate.open(["z"])
    assert await gate.current_kek_version("z") == 1 and calls.total == 1


def test_pkcs11() -> None:
    p = build_key_backend("pkcs11:///usr/lib/softhsm/libsofthsm2.so?token=zoneapp", PIN)
    assert isinstance(p, Pkcs11KeyProvider)
    assert p.token_label == "zoneapp"
    assert "1234-factory" not in repr(p)


@pytest.mark.parametrize(
    ("url", "pin", "message"),
    [
        ("vault://x", PIN, "unknown key provider URL scheme"),
        ("pkcs11:///usr/lib/softhsm/libsofthsm2.so", PIN, "token=LABEL"),
        ("pkcs11:///usr/lib/softhsm/libsofthsm2.so?token=", PIN, "token=LABEL"),
        ("pkcs11:///usr/lib/softhsm/libsofthsm2.so?token=a&token=b", PIN, "token=LABEL"),
        ("pkcs11:///usr/lib/softhsm/libsofthsm2.so?token=zoneapp", None, "needs a PIN"),
        ("pkcs11://host/lib.so?token=zoneapp", PIN, "absolute module path"),
        ("pkcs11:?token=zoneapp", PIN, "missing the module path"),
        ("pkcs11:///lib.so?token=zoneapp&slot=1", PIN, "unknown parameters"),
        ("memory://x/y", None, "no path"),
        ("memory://", None, "ZONEAPP_ENV=development"),
        ("MEMORY://named", None, "ZONEAPP_ENV=development"),
    ],
)
def test_errors(url: str, pin: Secret | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_key_provider(url, pin)


def test_pin_in_url_is_refused_without_echo() -> None:
    with pytest.raises(ValueError, match="must not carry a PIN") as info:
        build_key_provider("pkcs11:///lib.so?token=zoneapp&pin-value=99887766", PIN)
    assert "99887766" not in str(info.value)


def test_memory_keys_in_development_are_announced_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="zoneapp.keys"):
        build_key_provider("memory://", None, development=True)
    assert any(
        r.levelno == logging.WARNING and "DEVELOPMENT ONLY" in r.getMessage()
        for r in caplog.records
    )
