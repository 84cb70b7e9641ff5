"""In-memory key provider doing real AES-256-GCM and HMAC-SHA256.

Used by unit tests and the dev stack. It is not a mock: keys are random, wrap/unwrap
is AES-256-GCM with the same blob layout and AAD binding as the PKCS#11 provider,
and the error semantics are the same (the contract suite in ``tests/contract/keys``
runs against both). Like the PKCS#11 provider it implements only the key operations;
counting, zone gating and retry are the wrappers of ``wrappers.py``.

A :class:`MemoryKeyStore` plays the role of the token: several providers
("workers") constructed on the same store see the same keys, and setting
``store.available = False`` makes every provider fail with
:class:`KeyUnavailableError`, as a crashed HSM would, for fail-closed tests.

KEKs live only inside ``AESGCM`` objects and HMAC keys inside a slot-only holder
with no accessor; nothing in this module returns them, so a KEK cannot be read out
through the provider API.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Collection

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zoneapp.keys.admin import KeyBackend
from zoneapp.keys.base import (
    DEK_BYTES,
    HMAC_KEY_BYTES,
    WRAP_NONCE_BYTES,
    WRAPPED_DEK_MIN_BYTES,
    DecryptionError,
    KeyLoginError,
    KeyProviderError,
    KeyUnavailableError,
    UnknownKeyVersionError,
    validate_zone,
)
from zoneapp.settings import Secret

__all__ = ["MemoryKeyProvider", "MemoryKeyStore"]


class _HmacKey:
    """Holds an HMAC key; no repr of the bytes, no accessor besides ``sign``."""

    __slots__ = ("__key",)

    def __init__(self) -> None:
        self.__key = os.urandom(HMAC_KEY_BYTES)

    def sign(self, data: bytes) -> bytes:
        return hmac.new(self.__key, data, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "<hmac-sha256 key>"


class MemoryKeyStore:
    """The shared "token": per-zone KEK versions and HMAC keys, thread-safe.

    ``pin`` optionally protects the store like a token user PIN, so wrong-PIN
    behaviour can be exercised without an HSM.
    """

    def __init__(self, *, pin: Secret | None = None) -> None:
        self._lock = threading.Lock()
        self._keks: dict[str, dict[int, AESGCM]] = {}
        self._hmac: dict[str, _HmacKey] = {}
        self._pin_digest = pin.digest() if pin is not None else None
        #: Set to False to simulate an unreachable HSM: every operation raises KeyUnavailableError.
        self.available = True

    def __repr__(self) -> str:
        with self._lock:
            versions = {z: len(v) for z, v in sorted(self._keks.items())}
        return f"MemoryKeyStore(kek_versions={versions}, available={self.available})"

    # The methods below are the store's "wire protocol"; providers call them.

    def _check(self) -> None:
        if not self.available:
            raise KeyUnavailableError("memory key store is unavailable")

    def _login(self, pin: Secret | None) -> None:
        self._check()
        if self._pin_digest is None:
            return
        if pin is None or not pin.matches(self._pin_digest):
            raise KeyLoginError("login to memory key store failed: PinIncorrect")

    def _latest(self, zone: str) -> int:
        self._check()
        with self._lock:
            versions = self._keks.get(zone)
            return max(versions) if versions else 0

    def _kek(self, zone: str, version: int) -> AESGCM | None:
        self._check()
        with self._lock:
            return self._keks.get(zone, {}).get(version)

    def _create_kek(self, zone: str, version: int) -> bool:
        """Create KEK ``version`` unless it exists; False if it already did."""
        self._check()
        with self._lock:
            versions = self._keks.setdefault(zone, {})
            if version in versions:
                return False
            versions[version] = AESGCM(AESGCM.generate_key(bit_length=256))
            return True

    def _hmac_key(self, zone: str) -> _HmacKey | None:
        self._check()
        with self._lock:
            return self._hmac.get(zone)

    def _create_hmac(self, zone: str) -> None:
        self._check()
        with self._lock:
            self._hmac.setdefault(zone, _HmacKey())


class MemoryKeyProvider(KeyBackend):
    """The key operations and admin over a :class:`MemoryKeyStore` (a fresh private one by
    default). Like a PKCS#11 session it logs in on ``open`` or on first use."""

    def __init__(self, store: MemoryKeyStore | None = None, *, pin: Secret | None = None) -> None:
        self._store = store if store is not None else MemoryKeyStore()
        self._pin = pin
        self._logged_in = False
        # Mirrors the PKCS#11 handle cache: a known version costs no lookup.
        self._known: dict[tuple[str, int], AESGCM] = {}
        self._hmac_known: dict[str, _HmacKey] = {}

    @property
    def store(self) -> MemoryKeyStore:
        """The store this provider talks to (share it to build a second "worker")."""
        return self._store

    def __repr__(self) -> str:
        return f"MemoryKeyProvider(store={self._store!r}, logged_in={self._logged_in})"

    def _session(self) -> None:
        if not self._logged_in:
            self._store._login(self._pin)
            self._logged_in = True
        else:
            self._store._check()

    async def open(self, zones: Collection[str]) -> None:
        for zone in zones:
            validate_zone(zone)
        self._store._login(self._pin)
        self._known.clear()
        self._hmac_known.clear()
        self._logged_in = True

    async def close(self) -> None:
        self._logged_in = False
        self._known.clear()
        self._hmac_known.clear()

    async def ping(self) -> None:
        self._store._login(self._pin)

    async def provision(self, zones: Collection[str]) -> None:
        checked = [validate_zone(z) for z in zones]
        self._store._login(self._pin)
        for zone in checked:
            if self._store._kek(zone, 1) is None:
                self._store._create_kek(zone, 1)
            if self._store._hmac_key(zone) is None:
                self._store._create_hmac(zone)

    async def current_kek_version(self, zone: str) -> int:
        validate_zone(zone)
        self._session()
        version = self._store._latest(zone)
        if version == 0:
            raise UnknownKeyVersionError(f"zone {zone!r} has no KEK; provision it first")
        kek = self._store._kek(zone, version)
        if kek is not None:
            self._known[(zone, version)] = kek
        return version

    async def rotate_kek(self, zone: str) -> int:
        validate_zone(zone)
        self._store._login(self._pin)
        latest = self._store._latest(zone)
        if latest == 0:
            raise UnknownKeyVersionError(f"zone {zone!r} has no KEK to rotate; provision it first")
        # Another writer may have taken latest+1 meanwhile; take the next free version.
        version = latest + 1
        while not self._store._create_kek(zone, version):
            version += 1
        return version

    def _resolve(self, zone: str, version: int) -> AESGCM:
        if version < 1:
            raise UnknownKeyVersionError(f"zone {zone!r} has no KEK version {version}")
        kek = self._known.get((zone, version))
        if kek is not None:
            return kek
        kek = self._store._kek(zone, version)
        if kek is None:
            raise UnknownKeyVersionError(f"zone {zone!r} has no KEK version {version}")
        self._known[(zone, version)] = kek
        return kek

    async def wrap_dek(self, zone: str, version: int, dek: bytes, aad: bytes) -> bytes:
        validate_zone(zone)
        if len(dek) != DEK_BYTES:
            raise KeyProviderError(f"a data key must be {DEK_BYTES} bytes")
        self._session()
        kek = self._resolve(zone, version)
        nonce = os.urandom(WRAP_NONCE_BYTES)
        return nonce + kek.encrypt(nonce, dek, aad)

    async def unwrap_dek(self, zone: str, version: int, wrapped: bytes, aad: bytes) -> bytes:
        validate_zone(zone)
        if len(wrapped) < WRAPPED_DEK_MIN_BYTES:
            raise DecryptionError(f"wrapped data key for zone {zone!r} is truncated")
        self._session()
        kek = self._resolve(zone, version)
        try:
            return kek.decrypt(wrapped[:WRAP_NONCE_BYTES], wrapped[WRAP_NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError(
                f"cannot unwrap data key with KEK {zone!r} v{version}: "
                "tampered wrapped key or wrong binding"
            ) from None

    async def derive_hmac_key(self, zone: str, purpose: bytes) -> bytes:
        validate_zone(zone)
        self._session()
        key = self._hmac_known.get(zone)
        if key is None:
            key = self._store._hmac_key(zone)
            if key is None:
                raise UnknownKeyVersionError(f"zone {zone!r} has no HMAC key; provision it first")
            self._hmac_known[zone] = key
        return key.sign(purpose)
