"""Unit-test helpers: real in-memory keys (AES-GCM, HMAC) and a real in-memory vault."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.vault import MemoryTokenVault

ZONES = ("restricted", "confidential", "internal", "public")


@pytest.fixture
async def provider() -> AsyncIterator[MemoryKeyProvider]:
    p = MemoryKeyProvider()
    await p.provision(ZONES)
    await p.open(ZONES)
    yield p
    await p.close()


@pytest.fixture
def keyring(provider: MemoryKeyProvider) -> KeyRing:
    return KeyRing(provider, ZONES)


@pytest.fixture
def vault() -> MemoryTokenVault:
    return MemoryTokenVault()
