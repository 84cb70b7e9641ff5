"""Envelope encryption for record fields: the hot path never touches the HSM.

Each worker generates a random 256-bit data key (DEK) per zone in process, has the
key store wrap it once under the zone's current KEK, and then encrypts fields in
process with AES-256-GCM. The wrapped DEK travels inside every ciphertext, so any
worker allowed to use the zone can unwrap it (one HSM call, then cached). This is
the Kroxylicious record-encryption scheme applied per field. HSM calls happen
only in :meth:`KeyRing.prepare` (new DEK, periodic KEK version check, HMAC working
keys) and on the first :meth:`KeyRing.decrypt` of each foreign DEK.

Ciphertext format V1
--------------------
Text form: ``"zenc1." + base64url_without_padding(binary)``. Only ``zenc1.`` and
base64url characters (``A-Z a-z 0-9 - _``) appear. ::

    offset      size  field
    0           1     format version = 0x01
    1           1     zone_len (1..64)
    2           n     zone, ASCII ([A-Za-z0-9._-])
    2+n         4     kek_version, unsigned, big-endian
    6+n         2     wrapped_len (w), unsigned, big-endian (60 today)
    8+n         w     wrapped DEK = nonce(12) || AES-256-GCM(KEK, DEK) || tag(16),
                      made by the key store with
                      AAD = b"zoneapp/dek/v1|" + zone + b"|" + ascii_decimal(kek_version)
    8+n+w       12    nonce (random, 96 bits)
    20+n+w      *     AES-256-GCM(DEK, plaintext) ciphertext || 16-byte tag,
                      AAD = caller_aad || header

``header`` is bytes ``[0, 8+n+w)`` - everything before the nonce. The pipeline
passes ``caller_aad = b"<topic>|<field.path>"``, so a ciphertext moved to another
field or topic, or with any header byte changed, fails to decrypt. The wrapped
DEK's own AAD binds it to its zone and KEK version inside the HSM.

Size: ``6 + ceil(4 * (n + 96 + len(plaintext)) / 3)`` characters (w = 60), e.g.
a 16-byte card number becomes 172 characters for zone "confidential".
Base64url output can contain digit runs by chance, so DLP on outputs should skip
``zenc1.`` tokens rather than rely on their alphabet.

Limits: a DEK is replaced after ``dek_max_uses`` encryptions (default 2**28, far
below the 2**32 random-nonce bound for GCM, which :meth:`KeyRing.encrypt` enforces
as a hard stop) or ``dek_max_age`` seconds, checked in ``prepare()``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zoneapp.keys.base import (
    DEK_BYTES,
    DecryptionError,
    KeyProvider,
    KeyProviderError,
    KeyUnavailableError,
    ZoneNotPermittedError,
    validate_zone,
)

__all__ = [
    "CIPHERTEXT_PREFIX",
    "FORMAT_V1",
    "HMAC_PURPOSE_PREFIX",
    "CiphertextHeader",
    "KeyRing",
    "KeyRingNotPreparedError",
    "dek_aad",
    "is_ciphertext",
    "parse_ciphertext_header",
]

log = logging.getLogger(__name__)

CIPHERTEXT_PREFIX = "zenc1."
FORMAT_V1 = 0x01
HMAC_PURPOSE_PREFIX = b"zoneapp/hmac/v1/"
_NONCE_BYTES = 12
_TAG_BYTES = 16
# NIST SP 800-38D: at most 2**32 invocations per key with random 96-bit nonces.
_NONCE_HARD_LIMIT = 2**32
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_TAMPERED = "tampered ciphertext or wrong field/topic binding"


class KeyRingNotPreparedError(KeyProviderError):
    """A sync hot-path method needs a key that ``await prepare()`` has not loaded."""


@dataclass(frozen=True, slots=True)
class CiphertextHeader:
    """Public metadata of a ciphertext (no secrets): for logs, metrics and routing."""

    format_version: int
    zone: str
    kek_version: int


@dataclass(frozen=True, slots=True)
class _Parsed:
    header: bytes
    zone: str
    kek_version: int
    wrapped: bytes
    nonce: bytes
    body: bytes


class _Dek:
    """The current data key of one zone in this worker."""

    __slots__ = ("aead", "created", "header", "kek_version", "uses")

    def __init__(self, aead: AESGCM, header: bytes, kek_version: int, created: float) -> None:
        self.aead = aead
        self.header = header
        self.kek_version = kek_version
        self.created = created
        self.uses = 0

    def __repr__(self) -> str:
        return f"<data key kek_v{self.kek_version} uses={self.uses}>"


def dek_aad(zone: str, kek_version: int) -> bytes:
    """AAD binding a wrapped DEK to its zone and KEK version (checked inside the HSM)."""
    return b"zoneapp/dek/v1|" + zone.encode("ascii") + b"|" + str(kek_version).encode("ascii")


def _build_header(zone: str, kek_version: int, wrapped: bytes) -> bytes:
    zone_b = zone.encode("ascii")
    return (
        bytes((FORMAT_V1, len(zone_b)))
        + zone_b
        + kek_version.to_bytes(4, "big")
        + len(wrapped).to_bytes(2, "big")
        + wrapped
    )


def _malformed(why: str) -> DecryptionError:
    return DecryptionError(f"malformed ciphertext: {why}")


def _parse(ciphertext: str) -> _Parsed:
    if not isinstance(ciphertext, str) or not ciphertext.startswith(CIPHERTEXT_PREFIX):
        raise _malformed(f"not a {CIPHERTEXT_PREFIX} ciphertext")
    text = ciphertext[len(CIPHERTEXT_PREFIX) :]
    if not _B64URL.fullmatch(text):
        raise _malformed("not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _malformed("bad base64url length") from None
    # Reject non-canonical encodings (altered unused bits in the last character), so that
    # every change to the text is a change to the bytes.
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != text.encode("ascii"):
        raise _malformed("non-canonical base64url")
    if len(raw) < 2:
        raise _malformed("truncated")
    if raw[0] != FORMAT_V1:
        raise _malformed(f"unsupported format version {raw[0]}")
    zone_len = raw[1]
    off = 2 + zone_len
    if len(raw) < off + 6:
        raise _malformed("truncated")
    try:
        zone = validate_zone(raw[2:off].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise _malformed("bad zone name") from None
    kek_version = int.from_bytes(raw[off : off + 4], "big")
    wrapped_len = int.from_bytes(raw[off + 4 : off + 6], "big")
    off += 6
    wrapped = raw[off : off + wrapped_len]
    off += wrapped_len
    if len(wrapped) != wrapped_len or len(raw) < off + _NONCE_BYTES + _TAG_BYTES:
        raise _malformed("truncated")
    return _Parsed(
        header=raw[:off],
        zone=zone,
        kek_version=kek_version,
        wrapped=wrapped,
        nonce=raw[off : off + _NONCE_BYTES],
        body=raw[off + _NONCE_BYTES :],
    )


def is_ciphertext(s: str) -> bool:
    """True if ``s`` is a well-formed V1 ciphertext (structure only; nothing is decrypted)."""
    if not isinstance(s, str) or not s.startswith(CIPHERTEXT_PREFIX):
        return False
    try:
        _parse(s)
    except DecryptionError:
        return False
    return True


def parse_ciphertext_header(s: str) -> CiphertextHeader:
    """Zone and KEK version of a ciphertext, for metadata; DecryptionError if malformed."""
    parsed = _parse(s)
    return CiphertextHeader(FORMAT_V1, parsed.zone, parsed.kek_version)


class KeyRing:
    """Working keys for the zones this worker may use.

    Sync hot-path methods (encrypt, hmac_key); async prepare() does the rare HSM calls.

    Not thread-safe: use one KeyRing per event loop (the Faust worker's).
    """

    def __init__(
        self,
        provider: KeyProvider,
        zones: Collection[str],
        *,
        dek_max_uses: int = 2**28,
        dek_max_age: float = 24 * 3600,
        version_check_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        decrypt_cache_size: int = 1024,
    ) -> None:
        if not 0 < dek_max_uses <= _NONCE_HARD_LIMIT:
            raise ValueError(f"dek_max_uses must be in 1..{_NONCE_HARD_LIMIT}")
        if dek_max_age <= 0 or decrypt_cache_size < 1:
            raise ValueError("dek_max_age and decrypt_cache_size must be positive")
        if version_check_interval < 0:
            raise ValueError("version_check_interval must not be negative")
        self._provider = provider
        self._zones = frozenset(validate_zone(z) for z in zones)
        self._max_uses = dek_max_uses
        self._max_age = dek_max_age
        self._interval = version_check_interval
        self._clock = clock
        self._cache_size = decrypt_cache_size
        self._current: dict[str, _Dek] = {}
        self._kek_version: dict[str, int] = {}
        self._checked_at: dict[str, float] = {}
        self._hmac_wanted: set[tuple[str, str]] = set()
        self._hmac_keys: dict[tuple[str, str], bytes] = {}
        # Keyed by the whole header (zone, version, wrapped DEK), not the wrapped DEK alone,
        # so a cached DEK is never reused under a zone/version it was not unwrapped for.
        self._dek_cache: OrderedDict[bytes, AESGCM] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[AESGCM]] = {}
        self._prepare_lock = asyncio.Lock()
        self._deks_created = 0
        self._encryptions = 0
        self._decryptions = 0
        self._unwraps = 0
        self._cache_hits = 0
        self._version_checks = 0
        self._version_check_failures = 0

    def __repr__(self) -> str:
        return f"KeyRing(zones={sorted(self._zones)}, provider={self._provider!r})"

    @property
    def zones(self) -> frozenset[str]:
        return self._zones

    @property
    def stats(self) -> dict[str, int]:
        """Counters for metrics/tests; ``hsm_calls`` is the provider's."""
        return {
            "deks_created": self._deks_created,
            "encryptions": self._encryptions,
            "decryptions": self._decryptions,
            "unwraps": self._unwraps,
            "dek_cache_hits": self._cache_hits,
            "version_checks": self._version_checks,
            "version_check_failures": self._version_check_failures,
            "hsm_calls": self._provider.hsm_calls,
        }

    def _permit(self, zone: str) -> None:
        if zone not in self._zones:
            raise ZoneNotPermittedError(f"zone {zone!r} is not one of this KeyRing's zones")

    # --- prepare (async, rare HSM calls) ----------------------------------------------------

    async def prepare(self) -> None:
        """Called before each batch of records; zero HSM calls in the steady state.

        Makes sure each zone has a current DEK (32 random bytes made in process,
        wrapped under the zone's current KEK by the provider: one HSM call per DEK),
        replaces a DEK past its use budget or age, re-checks the current KEK version
        at most every ``version_check_interval`` seconds (so a rotation by another
        process is picked up within that bound), and loads HMAC working keys once.

        If the version re-check fails with KeyUnavailableError while the current DEK
        is still within budget and age, encryption carries on with it (the check is
        retried on the next call); a DEK that must be replaced needs the store, so
        then the error propagates (fail closed).
        """
        async with self._prepare_lock:
            now = self._clock()
            for zone in sorted(self._zones):
                await self._refresh_zone(zone, now)
            for zone, purpose in sorted(self._hmac_wanted - self._hmac_keys.keys()):
                key = await self._provider.derive_hmac_key(
                    zone, HMAC_PURPOSE_PREFIX + purpose.encode("utf-8")
                )
                self._hmac_keys[(zone, purpose)] = key

    def _usable(self, dek: _Dek, now: float) -> bool:
        return dek.uses < self._max_uses and now - dek.created < self._max_age

    async def _refresh_zone(self, zone: str, now: float) -> None:
        dek = self._current.get(zone)
        version = self._kek_version.get(zone)
        checked = self._checked_at.get(zone)
        if version is None or checked is None or now - checked >= self._interval:
            try:
                self._version_checks += 1
                version = await self._provider.current_kek_version(zone)
            except KeyUnavailableError as exc:
                if dek is None or not self._usable(dek, now):
                    raise
                self._version_check_failures += 1
                log.warning(
                    "KEK version check for zone %r failed (%s); keeping its data key", zone, exc
                )
                return
            self._kek_version[zone] = version
            self._checked_at[zone] = now
        if dek is not None and dek.kek_version == version and self._usable(dek, now):
            return
        await self._new_dek(zone, version, now)

    async def _new_dek(self, zone: str, version: int, now: float) -> None:
        dek = os.urandom(DEK_BYTES)
        wrapped = await self._provider.wrap_dek(zone, version, dek, dek_aad(zone, version))
        header = _build_header(zone, version, wrapped)
        aead = AESGCM(dek)
        del dek
        self._current[zone] = _Dek(aead, header, version, now)
        self._cache_put(header, aead)  # our own output decrypts without an HSM call
        self._deks_created += 1
        log.debug("new data key for zone %r under KEK v%d", zone, version)

    def _cache_put(self, header: bytes, aead: AESGCM) -> None:
        self._dek_cache[header] = aead
        self._dek_cache.move_to_end(header)
        while len(self._dek_cache) > self._cache_size:
            self._dek_cache.popitem(last=False)

    # --- HMAC working keys ----------------------------------------------------------------------

    def require_hmac(self, zone: str, purpose: str) -> None:
        """Register a (zone, purpose) HMAC working key; the next prepare() derives it."""
        self._permit(zone)
        if not purpose:
            raise ValueError("HMAC purpose must be non-empty")
        self._hmac_wanted.add((zone, purpose))

    def hmac_key(self, zone: str, purpose: str) -> bytes:
        """Sync. The working key ``provider.derive_hmac_key(zone, b"zoneapp/hmac/v1/" + purpose)``.

        It must be registered with :meth:`require_hmac` and loaded by :meth:`prepare`
        first; otherwise KeyRingNotPreparedError says which step is missing.
        """
        key = self._hmac_keys.get((zone, purpose))
        if key is not None:
            return key
        self._permit(zone)
        if (zone, purpose) in self._hmac_wanted:
            raise KeyRingNotPreparedError(
                f"HMAC key for zone {zone!r} purpose {purpose!r} is registered but not loaded; "
                "await KeyRing.prepare() first"
            )
        raise KeyRingNotPreparedError(
            f"HMAC key for zone {zone!r} purpose {purpose!r} was never requested; "
            "call KeyRing.require_hmac() before prepare()"
        )

    # --- encrypt (sync, in process) -----------------------------------------------------------

    def encrypt(self, zone: str, plaintext: bytes, aad: bytes) -> str:
        """Sync, in-process AES-256-GCM with the zone's current DEK and a random 96-bit nonce.

        Counts one use of the DEK. Returns the V1 text format (module docstring).
        """
        dek = self._current.get(zone)
        if dek is None:
            self._permit(zone)
            raise KeyRingNotPreparedError(
                f"no data key for zone {zone!r}; await KeyRing.prepare() first"
            )
        if dek.uses >= _NONCE_HARD_LIMIT:
            raise KeyRingNotPreparedError(
                f"data key for zone {zone!r} is exhausted; await KeyRing.prepare()"
            )
        dek.uses += 1
        self._encryptions += 1
        nonce = os.urandom(_NONCE_BYTES)
        header = dek.header
        body = dek.aead.encrypt(nonce, plaintext, aad + header)
        return CIPHERTEXT_PREFIX + base64.urlsafe_b64encode(header + nonce + body).rstrip(
            b"="
        ).decode("ascii")

    # --- decrypt (async: may need one unwrap) ---------------------------------------------------

    async def decrypt(self, ciphertext: str, aad: bytes) -> bytes:
        """Parse V1, unwrap the DEK via the provider, decrypt.

        Unwrapped DEKs are kept in a bounded LRU, so repeat decrypts cost no HSM call.

        Errors: DecryptionError('tampered ciphertext or wrong field/topic binding'),
        UnknownKeyVersionError, ZoneNotPermittedError, KeyUnavailableError - never key material.
        """
        parsed = _parse(ciphertext)
        self._permit(parsed.zone)
        aead = await self._dek_for(parsed)
        self._decryptions += 1
        try:
            return aead.decrypt(parsed.nonce, parsed.body, aad + parsed.header)
        except InvalidTag:
            raise DecryptionError(_TAMPERED) from None

    async def _dek_for(self, parsed: _Parsed) -> AESGCM:
        key = parsed.header
        aead = self._dek_cache.get(key)
        if aead is not None:
            self._dek_cache.move_to_end(key)
            self._cache_hits += 1
            return aead
        while (pending := self._inflight.get(key)) is not None:
            # Another task is unwrapping this DEK right now: share its HSM call.
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled():
                    continue  # that task was cancelled, not this one: try ourselves
                raise
        fut: asyncio.Future[AESGCM] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            self._unwraps += 1
            dek = await self._provider.unwrap_dek(
                parsed.zone,
                parsed.kek_version,
                parsed.wrapped,
                dek_aad(parsed.zone, parsed.kek_version),
            )
            if len(dek) != DEK_BYTES:
                raise DecryptionError(_TAMPERED)
            aead = AESGCM(dek)
            del dek
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: nobody may be waiting
            raise
        finally:
            self._inflight.pop(key, None)
        self._cache_put(key, aead)
        fut.set_result(aead)
        return aead
