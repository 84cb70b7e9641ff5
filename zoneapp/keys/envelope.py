"""Envelope encryption for record fields: the hot path never touches the HSM.

Each worker generates a random 256-bit data key (DEK) per zone in process, has the
key store wrap it once under the zone's current KEK, and then encrypts fields in
process with AES-256-GCM. The wrapped DEK travels inside every ciphertext, so any
worker allowed to use the zone can unwrap it (one HSM call, then cached). This is
the Kroxylicious record-encryption scheme applied per field. HSM calls happen
only in :meth:`KeyRing.prepare` (new DEK, periodic KEK version check, HMAC working
keys) and on the first :meth:`KeyRing.decrypt` of each foreign DEK.

Ciphertext format V2 (written today)
-----------------------------------
Text form: ``"zenc2." + base64url_without_padding(binary)``. Only ``zenc2.`` and
base64url characters (``A-Z a-z 0-9 - _``) appear. ::

    offset      size  field
    0           1     format version = 0x02
    1           1     purpose: 0x01 record field, 0x02 vault entry, 0x03 subject key
    2           1     zone_len (1..64)
    3           n     zone, ASCII ([A-Za-z0-9._-])
    3+n         2     tenant_len (t, 0..1024), unsigned, big-endian
    5+n         t     tenant, UTF-8 (empty when the policy has no tenant id)
    5+n+t       4     kek_version, unsigned, big-endian
    9+n+t       2     wrapped_len (w), unsigned, big-endian (60 today)
    11+n+t      w     wrapped DEK = nonce(12) || AES-256-GCM(KEK, DEK) || tag(16),
                      made by the key store with
                      AAD = b"zoneapp/dek/v1|" + zone + b"|" + ascii_decimal(kek_version)
    11+n+t+w    12    nonce (random, 96 bits)
    23+n+t+w    *     AES-256-GCM(DEK, plaintext) ciphertext || 16-byte tag,
                      AAD = Aad.encode() || header

``header`` is bytes ``[0, 11+n+t+w)``: everything before the nonce, so the purpose
and the tenant are authenticated. :class:`Aad` is the context a ciphertext is bound
to, encoded with a domain tag and a length prefix on every part::

    u32 len | domain tag | u32 len | tenant | (u32 len | part)*

with the domain tags ``zoneapp/field/v2`` (parts: topic, rule path),
``zoneapp/vault/v2`` (parts: field class, token) and ``zoneapp/skey/v2`` (parts:
subject hash). No topic or field name can turn one domain into another: the tag is
the first length-prefixed item, and the purpose byte is in the header as well.
:meth:`KeyRing.decrypt` refuses a ciphertext whose purpose or tenant is not the one
asked for, before any key is used.

The tenant is public metadata (it is also a Redis hash tag and, usually, a kept
field): a zenc2 ciphertext names its tenant so that an officer scoped to one tenant
can be refused another's ciphertext (``zoneapp.access``).

Format V1 (read only)
---------------------
``"zenc1." + base64url(0x01 | zone_len | zone | kek_version | wrapped_len | wrapped DEK
| nonce | ciphertext || tag)`` with AAD = ``legacy AAD || header``: ``b"<topic>|<rule
path>"`` for fields, ``b"zoneapp/vault/v1|" + tenant 0x1f class 0x1f token`` for vault
entries, ``b"zoneapp/skey/v1|" + tenant 0x1f subject`` for subject keys. V1 names no
purpose and no tenant, so :meth:`Aad.field` gives no legacy AAD for a "topic" that is
not a Kafka topic name (``[A-Za-z0-9._-]{1,249}``): a V1 vault entry or subject key can
never be opened as a field (their legacy AADs contain ``/``).

Size: ``6 + ceil(4 * (n + t + 99 + len(plaintext)) / 3)`` characters (w = 60).
Base64url output can contain digit runs by chance, so DLP on outputs should skip
``zenc2.``/``zenc1.`` tokens rather than rely on their alphabet.

Limits: a DEK is replaced after ``dek_max_uses`` encryptions (default 2**28, far
below the 2**32 random-nonce bound for GCM, which :meth:`KeyRing.encrypt` enforces
as a hard stop) or ``dek_max_age`` seconds, checked in ``prepare()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zoneapp.formats import b64url, unb64url
from zoneapp.keys.api import KeyProvider
from zoneapp.keys.base import (
    DEK_BYTES,
    DecryptionError,
    KeyProviderError,
    KeyUnavailableError,
    ZoneNotPermittedError,
    validate_zone,
)

__all__ = [
    "CIPHERTEXT_PREFIX",
    "CIPHERTEXT_PREFIXES",
    "CIPHERTEXT_PREFIX_V1",
    "FORMAT_V1",
    "FORMAT_V2",
    "HMAC_PURPOSE_PREFIX",
    "Aad",
    "CiphertextHeader",
    "HmacSha256",
    "KeyRing",
    "KeyRingNotPreparedError",
    "Purpose",
    "dek_aad",
    "is_ciphertext",
    "parse_ciphertext_header",
]

log = logging.getLogger(__name__)

CIPHERTEXT_PREFIX = "zenc2."
CIPHERTEXT_PREFIX_V1 = "zenc1."
CIPHERTEXT_PREFIXES = (CIPHERTEXT_PREFIX, CIPHERTEXT_PREFIX_V1)
FORMAT_V1 = 0x01
FORMAT_V2 = 0x02
MAX_TENANT_BYTES = 1024
HMAC_PURPOSE_PREFIX = b"zoneapp/hmac/v1/"
_NONCE_BYTES = 12
_TAG_BYTES = 16
# NIST SP 800-38D: at most 2**32 invocations per key with random 96-bit nonces.
_NONCE_HARD_LIMIT = 2**32
_HEADER_CACHE_SIZE = 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_TAMPERED = "tampered ciphertext or wrong field/topic binding"
#: A Kafka topic name: only such a "topic" gets a V1 (``topic|path``) field AAD.
KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


class Purpose(IntEnum):
    """What a ciphertext holds; written into the V2 header and checked on decrypt."""

    FIELD = 1
    VAULT = 2
    SUBJECT_KEY = 3


_DOMAIN = {
    Purpose.FIELD: b"zoneapp/field/v2",
    Purpose.VAULT: b"zoneapp/vault/v2",
    Purpose.SUBJECT_KEY: b"zoneapp/skey/v2",
}
_SEP = b"\x1f"


def _lp(item: bytes) -> bytes:
    return len(item).to_bytes(4, "big") + item


_DOMAIN_LP = {purpose: _lp(tag) for purpose, tag in _DOMAIN.items()}


@dataclass(frozen=True, slots=True)
class Aad:
    """The context a ciphertext is bound to: purpose (domain), tenant and parts.

    Build it with :meth:`field`, :meth:`vault` or :meth:`subject_key`; ``legacy`` is
    the V1 associated data of the same context, used only to read ``zenc1``
    ciphertexts (None when V1 must not be read in that context).
    """

    purpose: Purpose
    tenant: str
    parts: tuple[str, ...]
    legacy: bytes | None = None
    #: :meth:`encode`'s bytes, made once: an ``encrypt`` rule reuses its field's Aad.
    _encoded: bytes = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = _DOMAIN_LP[self.purpose] + _lp(self.tenant.encode("utf-8"))
        for part in self.parts:
            encoded += _lp(part.encode("utf-8"))
        object.__setattr__(self, "_encoded", encoded)

    def encode(self) -> bytes:
        """Domain tag, tenant and parts, each length-prefixed (module docstring)."""
        return self._encoded

    @classmethod
    def field(cls, tenant: str, topic: str, rule_path: str) -> Aad:
        """A record field encrypted for ``topic`` at ``rule_path`` (the ``encrypt`` rule)."""
        legacy = (
            f"{topic}|{rule_path}".encode() if KAFKA_TOPIC.fullmatch(topic) is not None else None
        )
        return cls(Purpose.FIELD, tenant, (topic, rule_path), legacy)

    @classmethod
    def vault(cls, tenant: str, field_class: str, token: str) -> Aad:
        """A token vault entry (the value behind ``token``)."""
        legacy = b"zoneapp/vault/v1|" + _SEP.join(
            (tenant.encode(), field_class.encode(), token.encode())
        )
        return cls(Purpose.VAULT, tenant, (field_class, token), legacy)

    @classmethod
    def subject_key(cls, tenant: str, subject: str) -> Aad:
        """A data subject's stored key (:mod:`zoneapp.keys.subject`)."""
        legacy = b"zoneapp/skey/v1|" + tenant.encode() + _SEP + subject.encode()
        return cls(Purpose.SUBJECT_KEY, tenant, (subject,), legacy)

    def __repr__(self) -> str:  # parts may be tokens: not for logs
        return f"Aad({self.purpose.name})"


class KeyRingNotPreparedError(KeyProviderError):
    """A sync hot-path method needs a key that ``await prepare()`` has not loaded."""


@dataclass(frozen=True, slots=True)
class CiphertextHeader:
    """Public metadata of a ciphertext (no secrets): for logs, metrics and routing."""

    format_version: int
    zone: str
    kek_version: int
    #: V2 only (None for V1): what the ciphertext holds, and its tenant.
    purpose: Purpose | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class _Parsed:
    version: int
    header: bytes
    zone: str
    kek_version: int
    wrapped: bytes
    nonce: bytes
    body: bytes
    purpose: Purpose | None
    tenant: str | None

    @property
    def dek_ref(self) -> bytes:
        return _dek_ref(self.zone, self.kek_version, self.wrapped)


class _Dek:
    """The current data key of one zone in this worker."""

    __slots__ = ("aead", "created", "headers", "kek_version", "uses", "wrapped", "zone_b")

    def __init__(
        self, aead: AESGCM, zone: str, kek_version: int, wrapped: bytes, created: float
    ) -> None:
        self.aead = aead
        self.zone_b = zone.encode("ascii")
        self.kek_version = kek_version
        self.wrapped = wrapped
        self.created = created
        self.uses = 0
        #: V2 headers by (purpose, tenant): the same few for every record of a batch.
        self.headers: dict[tuple[Purpose, str], bytes] = {}

    def header_v2(self, purpose: Purpose, tenant: bytes) -> bytes:
        return (
            bytes((FORMAT_V2, purpose, len(self.zone_b)))
            + self.zone_b
            + len(tenant).to_bytes(2, "big")
            + tenant
            + self.kek_version.to_bytes(4, "big")
            + len(self.wrapped).to_bytes(2, "big")
            + self.wrapped
        )

    def header_v1(self) -> bytes:
        return bytes((FORMAT_V1,)) + _dek_ref(
            self.zone_b.decode("ascii"), self.kek_version, self.wrapped
        )

    def __repr__(self) -> str:
        return f"<data key kek_v{self.kek_version} uses={self.uses}>"


def dek_aad(zone: str, kek_version: int) -> bytes:
    """AAD binding a wrapped DEK to its zone and KEK version (checked inside the HSM)."""
    return b"zoneapp/dek/v1|" + zone.encode("ascii") + b"|" + str(kek_version).encode("ascii")


def _dek_ref(zone: str, kek_version: int, wrapped: bytes) -> bytes:
    """What identifies a data key (zone, KEK version, wrapped DEK): the DEK cache's key,
    the same for both formats and every purpose and tenant."""
    zone_b = zone.encode("ascii")
    return (
        bytes((len(zone_b),))
        + zone_b
        + kek_version.to_bytes(4, "big")
        + len(wrapped).to_bytes(2, "big")
        + wrapped
    )


def _malformed(why: str) -> DecryptionError:
    return DecryptionError(f"malformed ciphertext: {why}")


def _parse(ciphertext: str) -> _Parsed:
    if not isinstance(ciphertext, str) or not ciphertext.startswith(CIPHERTEXT_PREFIXES):
        raise _malformed(f"not a {CIPHERTEXT_PREFIX} ciphertext")
    prefix = ciphertext[: len(CIPHERTEXT_PREFIX)]
    text = ciphertext[len(CIPHERTEXT_PREFIX) :]
    if not _B64URL.fullmatch(text):
        raise _malformed("not base64url")
    try:
        # Canonical only (no altered unused bits), so every change to the text is a
        # change to the bytes.
        raw = unb64url(text, canonical=True)
    except ValueError as exc:
        raise _malformed(str(exc)) from None
    if len(raw) < 3:
        raise _malformed("truncated")
    version = raw[0]
    if (version, prefix) not in ((FORMAT_V1, CIPHERTEXT_PREFIX_V1), (FORMAT_V2, CIPHERTEXT_PREFIX)):
        raise _malformed(f"unsupported format version {version}")
    purpose: Purpose | None = None
    tenant: str | None = None
    off = 1
    if version == FORMAT_V2:
        try:
            purpose = Purpose(raw[1])
        except ValueError:
            raise _malformed("unknown purpose") from None
        off = 2
    zone_len = raw[off]
    zone_end = off + 1 + zone_len
    if len(raw) < zone_end + 6:
        raise _malformed("truncated")
    try:
        zone = validate_zone(raw[off + 1 : zone_end].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise _malformed("bad zone name") from None
    off = zone_end
    if version == FORMAT_V2:
        tenant_len = int.from_bytes(raw[off : off + 2], "big")
        if tenant_len > MAX_TENANT_BYTES or len(raw) < off + 2 + tenant_len + 6:
            raise _malformed("truncated")
        try:
            tenant = raw[off + 2 : off + 2 + tenant_len].decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("bad tenant") from None
        off += 2 + tenant_len
    kek_version = int.from_bytes(raw[off : off + 4], "big")
    wrapped_len = int.from_bytes(raw[off + 4 : off + 6], "big")
    off += 6
    wrapped = raw[off : off + wrapped_len]
    off += wrapped_len
    if len(wrapped) != wrapped_len or len(raw) < off + _NONCE_BYTES + _TAG_BYTES:
        raise _malformed("truncated")
    return _Parsed(
        version=version,
        header=raw[:off],
        zone=zone,
        kek_version=kek_version,
        wrapped=wrapped,
        nonce=raw[off : off + _NONCE_BYTES],
        body=raw[off + _NONCE_BYTES :],
        purpose=purpose,
        tenant=tenant,
    )


def is_ciphertext(s: str) -> bool:
    """True if ``s`` is a well-formed V2 or V1 ciphertext (structure only; nothing is
    decrypted)."""
    if not isinstance(s, str) or not s.startswith(CIPHERTEXT_PREFIXES):
        return False
    try:
        _parse(s)
    except DecryptionError:
        return False
    return True


def parse_ciphertext_header(s: str) -> CiphertextHeader:
    """Zone, KEK version (and for V2 purpose and tenant) of a ciphertext, for metadata and
    authorization; nothing is authenticated before decryption. DecryptionError if malformed."""
    p = _parse(s)
    return CiphertextHeader(p.version, p.zone, p.kek_version, p.purpose, p.tenant)


_SHA256_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one working key, keyed once.

    ``hmac.digest`` schedules the key on every call, and the hash and tokenize rules
    make several MACs per record; this keeps the key's inner and outer SHA-256 states,
    so a MAC costs two state copies. Same bytes as ``hmac.digest(key, m, "sha256")``.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        block = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        """The 32-byte MAC of ``message``."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __repr__(self) -> str:  # never the key
        return "HmacSha256(<working key>)"


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
        self._hmacs: dict[tuple[str, str], HmacSha256] = {}
        # Keyed by zone, KEK version and wrapped DEK (``_dek_ref``), not the wrapped DEK
        # alone, so a cached DEK is never reused under a zone/version it was not unwrapped
        # for; purpose and tenant are not part of it, so they cost no extra unwraps.
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
        """Counters for metrics/tests. Calls sent to the key store are counted by the
        counting wrapper around the provider (``zoneapp.keys.wrappers.KeyCalls``)."""
        return {
            "deks_created": self._deks_created,
            "encryptions": self._encryptions,
            "decryptions": self._decryptions,
            "unwraps": self._unwraps,
            "dek_cache_hits": self._cache_hits,
            "version_checks": self._version_checks,
            "version_check_failures": self._version_check_failures,
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
                self._hmacs[(zone, purpose)] = HmacSha256(key)

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
        aead = AESGCM(dek)
        del dek
        self._current[zone] = _Dek(aead, zone, version, wrapped, now)
        self._cache_put(_dek_ref(zone, version, wrapped), aead)  # own output: no HSM call
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

    def hmac(self, zone: str, purpose: str) -> HmacSha256:
        """Sync. HMAC-SHA256 under :meth:`hmac_key` ``(zone, purpose)``, keyed once; the
        same errors as :meth:`hmac_key`."""
        mac = self._hmacs.get((zone, purpose))
        if mac is None:
            mac = self._hmacs[(zone, purpose)] = HmacSha256(self.hmac_key(zone, purpose))
        return mac

    # --- encrypt (sync, in process) -----------------------------------------------------------

    def encrypt(self, zone: str, plaintext: bytes, aad: Aad) -> str:
        """Sync, in-process AES-256-GCM with the zone's current DEK and a random 96-bit nonce.

        Counts one use of the DEK. Returns the V2 text format (module docstring), with
        ``aad``'s purpose and tenant in the header.
        """
        dek = self._use(zone)
        header = dek.headers.get((aad.purpose, aad.tenant))
        if header is None:
            tenant = aad.tenant.encode("utf-8")
            if len(tenant) > MAX_TENANT_BYTES:
                raise ValueError(f"tenant id longer than {MAX_TENANT_BYTES} bytes")
            header = dek.header_v2(aad.purpose, tenant)
            if len(dek.headers) >= _HEADER_CACHE_SIZE:  # tenant ids come from producers
                dek.headers.clear()
            dek.headers[(aad.purpose, aad.tenant)] = header
        return self._seal(CIPHERTEXT_PREFIX, dek, header, plaintext, aad.encode())

    def encrypt_legacy_v1(self, zone: str, plaintext: bytes, legacy_aad: bytes) -> str:
        """Write format V1 (``zenc1``). Production code never does: this exists so tests can
        prove that data written before V2 still decrypts, and which contexts it opens in."""
        dek = self._use(zone)
        return self._seal(CIPHERTEXT_PREFIX_V1, dek, dek.header_v1(), plaintext, legacy_aad)

    def _use(self, zone: str) -> _Dek:
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
        return dek

    @staticmethod
    def _seal(prefix: str, dek: _Dek, header: bytes, plaintext: bytes, aad: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        body = dek.aead.encrypt(nonce, plaintext, aad + header)
        return prefix + b64url(header + nonce + body)

    # --- decrypt (async: may need one unwrap) ---------------------------------------------------

    async def decrypt(self, ciphertext: str, aad: Aad) -> bytes:
        """Parse V2 (or V1), unwrap the DEK via the provider, decrypt.

        A V2 ciphertext opens only for ``aad``'s purpose and tenant (checked before any
        key is used); a V1 ciphertext only where ``aad`` has a legacy form. Unwrapped DEKs
        are kept in a bounded LRU, so repeat decrypts cost no HSM call.

        Errors: DecryptionError('tampered ciphertext or wrong field/topic binding'),
        UnknownKeyVersionError, ZoneNotPermittedError, KeyUnavailableError - never key material.
        """
        parsed = _parse(ciphertext)
        if parsed.version == FORMAT_V2:
            if parsed.purpose != aad.purpose or parsed.tenant != aad.tenant:
                raise DecryptionError(_TAMPERED)
            context = aad.encode()
        else:
            if aad.legacy is None:
                raise DecryptionError(_TAMPERED)
            context = aad.legacy
        self._permit(parsed.zone)
        aead = await self._dek_for(parsed)
        self._decryptions += 1
        try:
            return aead.decrypt(parsed.nonce, parsed.body, context + parsed.header)
        except InvalidTag:
            raise DecryptionError(_TAMPERED) from None

    async def _dek_for(self, parsed: _Parsed) -> AESGCM:
        key = parsed.dek_ref
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
