"""The key admin API: create keys (provision) and new KEK versions (rotate).

Used by ``rotate-key`` (``zoneapp.commands``) and ``zoneapp.stack.provision``, never by
a worker. Admin operations only create keys and never return key material, so they need
no ``open()`` and are not zone-gated, counted or retried: an operator reruns a failed
command (both are idempotent or say what they did). ``zoneapp.keys.build_key_admin``
builds one from the same URL as the runtime provider.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection

from zoneapp.keys.api import KeyProvider

__all__ = ["KeyAdmin", "KeyBackend"]


class KeyAdmin(ABC):
    """Creates keys in a key store; never returns them."""

    @abstractmethod
    async def provision(self, zones: Collection[str]) -> None:
        """Create v1 KEK + v1 HMAC key for each zone if missing (idempotent)."""

    @abstractmethod
    async def rotate_kek(self, zone: str) -> int:
        """Create KEK version n+1; returns n+1. UnknownKeyVersionError if never provisioned."""

    @abstractmethod
    async def close(self) -> None:
        """Release the session; idempotent."""


class KeyBackend(KeyProvider, KeyAdmin, ABC):
    """A key store back end (memory, PKCS#11): one object speaks both interfaces, because
    both talk to the same token; callers see only the half they need."""
