"""The runtime key API: what the pipeline and access/ need from a key store, and nothing else.

Modelled on Kroxylicious record encryption: the envelope layer (``envelope.py``) only
talks to this interface, so the in-memory provider (tests, dev) and the PKCS#11 provider
(SoftHSM, network HSMs) are interchangeable and pass one contract suite
(``tests/contract/keys``). Provisioning and rotation are not here: they are the admin
interface (``admin.py``), which workers never need.

A provider implements only the key operations. Call counting (``hsm_calls``), zone
permission (``opened_zones``) and retry are wrappers in ``wrappers.py`` that implement
this same interface and delegate; ``zoneapp.keys.build_key_provider`` composes them.
This module has no third-party dependencies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection

__all__ = ["KeyProvider"]


class KeyProvider(ABC):
    """A key store holding per-zone KEKs and HMAC keys that never leave it.

    Providers cache ``(zone, version) -> key handle`` lookups, so a wrap/unwrap with a
    known version costs one operation in the store.
    """

    @abstractmethod
    async def open(self, zones: Collection[str]) -> None:
        """Open a session (log in) for work on these zones; names are validated.

        A plain provider does not restrict itself to ``zones``: the zone gate wrapper
        (:class:`~zoneapp.keys.wrappers.ZoneGate`) refuses every other zone.
        """

    @abstractmethod
    async def close(self) -> None:
        """Close the session and forget cached key handles; idempotent."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise KeyUnavailableError if the key store is unusable."""

    @abstractmethod
    async def current_kek_version(self, zone: str) -> int:
        """Highest KEK version, read from the store (not a cache) so rotations are seen."""

    @abstractmethod
    async def wrap_dek(self, zone: str, version: int, dek: bytes, aad: bytes) -> bytes:
        """AES-256-GCM encrypt the DEK under the zone's KEK version, inside the HSM.

        Returns nonce(12) || ciphertext || tag(16).
        """

    @abstractmethod
    async def unwrap_dek(self, zone: str, version: int, wrapped: bytes, aad: bytes) -> bytes:
        """Inverse of wrap_dek; DecryptionError if the blob or AAD was altered."""

    @abstractmethod
    async def derive_hmac_key(self, zone: str, purpose: bytes) -> bytes:
        """HMAC-SHA256(zone's HMAC key, purpose), computed in the HSM.

        The 32-byte result is a working key kept in process memory. Deterministic:
        same zone + purpose gives the same bytes on every worker and after restarts.
        """
