"""The key-management API: what the pipeline needs from a key store, and nothing else.

Modelled on Kroxylicious record encryption: the envelope layer (``envelope.py``)
only talks to this interface, so the in-memory provider (tests, dev) and the
PKCS#11 provider (SoftHSM, network HSMs) are interchangeable and must pass the
same contract suite. This module has no third-party dependencies.

Key objects in a store, per zone:

* ``zoneapp:kek:<zone>:v<N>`` - AES-256 key-encryption key, version ``N`` (1, 2, ...).
  Never leaves the store; only wraps/unwraps data keys (AES-256-GCM).
* ``zoneapp:hmac:<zone>:v1`` - 32-byte HMAC-SHA256 key. Never leaves the store;
  only derives working keys (``HMAC(key, purpose)``) that do live in process memory.

Error messages name the store, token label and zone, never PINs or key bytes.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Collection

__all__ = [
    "DEK_BYTES",
    "HMAC_KEY_BYTES",
    "WRAPPED_DEK_MIN_BYTES",
    "WRAP_NONCE_BYTES",
    "WRAP_TAG_BYTES",
    "DecryptionError",
    "KeyProvider",
    "KeyProviderError",
    "KeyUnavailableError",
    "UnknownKeyVersionError",
    "ZoneNotPermittedError",
    "hmac_label",
    "kek_label",
    "validate_zone",
]

DEK_BYTES = 32
HMAC_KEY_BYTES = 32
WRAP_NONCE_BYTES = 12
WRAP_TAG_BYTES = 16
#: A wrapped key is nonce || ciphertext || tag; anything shorter is rejected without a store call.
WRAPPED_DEK_MIN_BYTES = WRAP_NONCE_BYTES + WRAP_TAG_BYTES + 1

# Zone names end up in key labels and in every ciphertext header: keep them short and inert.
_ZONE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class KeyProviderError(Exception):
    """Never includes key material or PINs in its message."""


class KeyUnavailableError(KeyProviderError):
    """HSM/token unreachable, login failed, session lost: transient; callers retry with backoff."""


class ZoneNotPermittedError(KeyProviderError):
    """This process did not open that zone's keys."""


class UnknownKeyVersionError(KeyProviderError):
    """The zone has no key of that version (never provisioned, or destroyed)."""


class DecryptionError(KeyProviderError):
    """Tampered ciphertext / wrong AAD / wrong zone."""


def validate_zone(zone: str) -> str:
    """Reject zone names that could break key labels or the ciphertext header."""
    if not isinstance(zone, str) or not _ZONE_RE.fullmatch(zone):
        raise ValueError(
            f"invalid zone name {zone!r}: use 1-64 of [A-Za-z0-9._-], starting alphanumeric"
        )
    return zone


def kek_label(zone: str, version: int) -> str:
    """Store label of a zone's KEK version."""
    if version < 1:
        raise ValueError("KEK versions start at 1")
    return f"zoneapp:kek:{validate_zone(zone)}:v{version}"


def hmac_label(zone: str) -> str:
    """Store label of a zone's HMAC key (single version: derived keys must stay stable)."""
    return f"zoneapp:hmac:{validate_zone(zone)}:v1"


class KeyProvider(ABC):
    """A key store holding per-zone KEKs and HMAC keys that never leave it.

    ``hsm_calls`` counts key operations sent to the store: wrap, unwrap, derive,
    create, and each find / version lookup. Opening, login and ``ping`` are not
    counted. Providers cache ``(zone, version) -> key`` lookups, so a wrap/unwrap
    with a known version costs exactly one call.

    Zone permission: after ``open(zones)`` only those zones' keys can be used
    (``current_kek_version``, ``wrap_dek``, ``unwrap_dek``, ``derive_hmac_key``).
    ``provision`` and ``rotate_kek`` are admin operations that only create keys
    and never return key material, so they work with or without ``open()``.
    """

    def __init__(self) -> None:
        self._hsm_calls = 0
        self._opened: frozenset[str] | None = None

    @property
    def hsm_calls(self) -> int:
        """Operations sent to the key store (wrap, unwrap, derive, find/version lookups, create)."""
        return self._hsm_calls

    @property
    def opened_zones(self) -> frozenset[str]:
        """Zones whose keys this provider may use (empty before ``open``)."""
        return self._opened or frozenset()

    def _count(self, n: int = 1) -> None:
        self._hsm_calls += n

    def _check_zone(self, zone: str) -> None:
        """Fail closed before any store call if the zone was not opened."""
        validate_zone(zone)
        if self._opened is None:
            raise ZoneNotPermittedError(
                f"zone {zone!r} is not usable: the key provider is not open"
            )
        if zone not in self._opened:
            raise ZoneNotPermittedError(f"zone {zone!r} was not opened by this process")

    @abstractmethod
    async def open(self, zones: Collection[str]) -> None:
        """Open a session; only these zones' keys are usable afterwards.

        Other zones raise ZoneNotPermittedError before any store call.
        """

    @abstractmethod
    async def close(self) -> None:
        """Close the session and forget cached key handles; idempotent."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise KeyUnavailableError if the key store is unusable."""

    @abstractmethod
    async def provision(self, zones: Collection[str]) -> None:
        """Create v1 KEK + v1 HMAC key for each zone if missing (idempotent).

        Admin operation; may be called without open().
        """

    @abstractmethod
    async def current_kek_version(self, zone: str) -> int:
        """Highest KEK version, read from the store (not a cache) so rotations are seen."""

    @abstractmethod
    async def rotate_kek(self, zone: str) -> int:
        """Create KEK version n+1; returns n+1."""

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
