"""Bearer API keys with roles, for every web endpoint but health and metrics.

Keys are configured HASHED in a YAML or JSON file named by ``ZONEAPP_API_KEYS_FILE``::

    keys:
      - name: ops-dashboard
        hash: "scrypt$16384$8$1$<salt>$<digest>"   # faust -A zoneapp hash-api-key < key
        roles: [viewer]
      - name: soc
        hash: "sha256$<hex>"                        # accepted for keys with >= 128 bits
        roles: [analyst, "officer:restricted:acme"]
      - name: soc-laptop
        hash: "sha256$<hex>"
        roles: ["officer:restricted"]
        person: soc                                 # optional: one person, several keys

Roles:

* ``viewer`` - statistics (zones, boundaries).
* ``analyst`` - violations and token metadata; includes ``viewer``.
* ``officer:<zone>`` - may resolve tokens of that zone; ``officer:<zone>:<tenant>`` only
  that tenant's. (Detokenize/decrypt endpoints use :meth:`Principal.may_resolve`.)
  A zone-wide officer may also preview, request and approve releases from the zone's
  quarantine (``zoneapp.web.release``); ``person`` names who holds a key, so that two
  keys of one person never count as two officers (the two-person rule).
* ``admin`` - may reload and promote the policy and read the shadow report
  (``zoneapp.web.policy``); nothing else, not even statistics.

A presented key is compared with every configured hash in constant time; a key that
verified once is remembered by a per-process keyed digest, so scrypt runs once per key
and process. Keys never reach a log line: only the entry's ``name`` does.

Hashing is the expensive step (about 45 ms of CPU per scrypt entry), so an unknown key
must not be a way to burn the worker's CPU (:class:`Authenticator`):

* a key that verified is answered from the good-key cache; a key that failed is
  remembered in a *separate*, bounded negative cache, so bogus keys never evict good ones;
* everything else is hashed only if the source address still has budget
  (``ZONEAPP_AUTH_RATE``/``ZONEAPP_AUTH_BURST``), checked *before* hashing, and only while
  fewer than ``MAX_PENDING`` verifications wait: otherwise 429 without hashing;
* the hashing runs on one dedicated thread (scrypt releases the GIL), never on the event
  loop that runs the boundary agents, and at most one core's worth at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoneapp.formats import b64url, unb64url
from zoneapp.web.ratelimit import RateLimiter

log = logging.getLogger(__name__)

VIEWER = "viewer"
ANALYST = "analyst"
OFFICER = "officer"
ADMIN = "admin"

#: scrypt cost: about 30 ms per hash on this machine's class of CPU.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_CACHE_SIZE = 1024
#: Failed keys remembered (separately from good ones): a repeated bogus key costs no hash.
_NEGATIVE_CACHE_SIZE = 4096
#: Verifications allowed to wait for the hashing thread before callers get 429.
MAX_PENDING = 8
# Per-process key for the verified-key cache: the cache never holds a key or a
# digest that is comparable outside this process.
_CACHE_KEY = os.urandom(32)


class AuthConfigError(ValueError):
    """The API keys file is missing or malformed; the message never contains a hash."""


class Unauthorized(Exception):
    """No key, or a key that matches no entry: HTTP 401."""


class RateLimited(Exception):
    """Too many key verifications from one source, or in all: HTTP 429, nothing hashed."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many authentication attempts")
        self.retry_after = retry_after


class Forbidden(Exception):
    """A valid key without the role this request needs: HTTP 403."""


@dataclass(frozen=True, slots=True)
class Role:
    """``viewer``, ``analyst``, ``officer:<zone>`` or ``officer:<zone>:<tenant>``."""

    name: str
    zone: str | None = None
    tenant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Role:
        parts = str(text).strip().split(":")
        if parts[0] in (VIEWER, ANALYST, ADMIN) and len(parts) == 1:
            return cls(parts[0])
        if parts[0] == OFFICER and len(parts) in (2, 3) and all(parts[1:]):
            return cls(OFFICER, parts[1], parts[2] if len(parts) == 3 else None)
        raise AuthConfigError(
            f"unknown role {text!r}: use viewer, analyst, admin, officer:<zone> or "
            "officer:<zone>:<tenant>"
        )

    def __str__(self) -> str:
        return ":".join(p for p in (self.name, self.zone, self.tenant) if p is not None)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key entry's name and roles (never the key)."""

    name: str
    roles: frozenset[Role]
    #: Who holds the key (the entry's ``person``, else its name): the two-person rule.
    person: str = ""

    def may_view_stats(self) -> bool:
        return any(r.name in (VIEWER, ANALYST) for r in self.roles)

    def may_view_violations(self) -> bool:
        return any(r.name == ANALYST for r in self.roles)

    def may_change_policy(self) -> bool:
        """Reload or promote the policy (``admin``)."""
        return any(r.name == ADMIN for r in self.roles)

    def officer_zones(self) -> set[str]:
        return {r.zone for r in self.roles if r.name == OFFICER and r.zone}

    def zone_officer_zones(self) -> set[str]:
        """Zones this caller is an officer of for every tenant (no tenant scope)."""
        return {r.zone for r in self.roles if r.name == OFFICER and r.zone and r.tenant is None}

    def may_resolve(self, zone: str, tenant: str | None = None) -> bool:
        """May this caller reverse tokens/ciphertexts of ``zone`` (and ``tenant``)?"""
        for r in self.roles:
            if r.name == OFFICER and r.zone == zone and (r.tenant is None or r.tenant == tenant):
                return True
        return False


def hash_key(key: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$N$r$p$salt$digest`` (base64url) of an API key, for the keys file."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${b64url(salt)}${b64url(digest)}"


def new_key() -> str:
    """A fresh random API key (256 bits)."""
    return "zk_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyEntry:
    name: str
    hash: str = field(repr=False)
    roles: frozenset[Role]
    person: str | None = None

    def principal(self) -> Principal:
        return Principal(self.name, self.roles, self.person or self.name)

    def __post_init__(self) -> None:
        scheme = self.hash.split("$", 1)[0]
        try:
            if scheme == "sha256":
                if len(bytes.fromhex(self.hash.split("$", 1)[1])) != 32:
                    raise ValueError
            elif scheme == "scrypt":
                _, n, r, p, salt, digest = self.hash.split("$")
                if int(n) < 2 or int(r) < 1 or int(p) < 1 or not unb64url(salt) or not digest:
                    raise ValueError
            else:
                raise ValueError
        except (ValueError, IndexError):
            raise AuthConfigError(
                f"API key {self.name!r}: hash must be sha256$<64 hex> or scrypt$N$r$p$salt$digest"
            ) from None

    def verify(self, key: bytes) -> bool:
        """Constant-time comparison of ``key``'s hash with this entry's."""
        scheme, _, rest = self.hash.partition("$")
        if scheme == "sha256":
            return hmac.compare_digest(hashlib.sha256(key).digest(), bytes.fromhex(rest))
        n, r, p, salt, digest = rest.split("$")
        expected = unb64url(digest)
        got = hashlib.scrypt(
            key, salt=unb64url(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
        return hmac.compare_digest(got, expected)


class ApiKeys:
    """The configured keys; ``authenticate`` maps a bearer key to a :class:`Principal`."""

    def __init__(self, entries: Sequence[KeyEntry]) -> None:
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise AuthConfigError("API key names must be unique")
        self.entries = tuple(entries)
        self._good: OrderedDict[bytes, KeyEntry] = OrderedDict()
        self._bad: OrderedDict[bytes, None] = OrderedDict()
        #: How many times a presented key was hashed against the entries (for tests, ops).
        self.verifications = 0

    def __repr__(self) -> str:
        return f"ApiKeys({len(self.entries)} keys)"

    @classmethod
    def from_mapping(cls, data: Any) -> ApiKeys:
        items = data.get("keys") if isinstance(data, Mapping) else data
        if not isinstance(items, list):
            raise AuthConfigError("the API keys file must hold a list under 'keys'")
        entries = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise AuthConfigError(f"API key #{i + 1}: needs a name")
            digest = item.get("hash") or (
                f"sha256${item['sha256']}" if isinstance(item.get("sha256"), str) else None
            )
            roles = item.get("roles")
            if not isinstance(digest, str) or not isinstance(roles, list) or not roles:
                raise AuthConfigError(f"API key {item['name']!r}: needs a hash and roles")
            person = item.get("person")
            if person is not None and (not isinstance(person, str) or not person.strip()):
                raise AuthConfigError(f"API key {item['name']!r}: person must be a name")
            entries.append(
                KeyEntry(item["name"], digest, frozenset(Role.parse(str(r)) for r in roles), person)
            )
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path | None) -> ApiKeys:
        """Read the keys file (YAML or JSON); no file means no key is valid."""
        if not path:
            return cls([])
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthConfigError(f"API keys file {path}: {exc.strerror}") from None
        try:
            data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise AuthConfigError(f"API keys file {path}: not valid YAML/JSON ({exc})") from None
        return cls.from_mapping(data)

    @staticmethod
    def bearer(authorization: str | None) -> bytes:
        """The key of an ``Authorization: Bearer <key>`` header, or Unauthorized."""
        if not authorization:
            raise Unauthorized("missing bearer key")
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthorized("not a bearer key")
        return key.encode()

    @staticmethod
    def marker(raw: bytes) -> bytes:
        return hmac.new(_CACHE_KEY, raw, hashlib.sha256).digest()

    def cached(self, marker: bytes) -> Principal | None:
        """The principal of a key that verified before; Unauthorized for one that failed;
        None when the key is new (it must be hashed)."""
        entry = self._good.get(marker)
        if entry is not None:
            self._good.move_to_end(marker)
            return entry.principal()
        if marker in self._bad:
            self._bad.move_to_end(marker)
            raise Unauthorized("unknown key")
        return None

    def verify(self, raw: bytes) -> KeyEntry | None:
        """Hash ``raw`` against every entry (no early exit: timing does not tell which)."""
        entry = None
        for candidate in self.entries:
            if candidate.verify(raw) and entry is None:
                entry = candidate
        return entry

    def remember(self, marker: bytes, entry: KeyEntry | None) -> None:
        self.verifications += 1
        if entry is None:
            self._bad[marker] = None
            if len(self._bad) > _NEGATIVE_CACHE_SIZE:
                self._bad.popitem(last=False)
        else:
            self._good[marker] = entry
            if len(self._good) > _CACHE_SIZE:
                self._good.popitem(last=False)

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an ``Authorization: Bearer <key>`` header, or Unauthorized.

        Synchronous, with no rate limit: for tools and tests. Web views use
        :class:`Authenticator`, which hashes off the event loop.
        """
        raw = self.bearer(authorization)
        marker = self.marker(raw)
        known = self.cached(marker)
        if known is not None:
            return known
        entry = self.verify(raw)
        self.remember(marker, entry)
        if entry is None:
            raise Unauthorized("unknown key")
        return entry.principal()


class ApiKeyFile:
    """The keys of ``ZONEAPP_API_KEYS_FILE``: loaded when the worker starts (a broken file
    stops it), else on first use; until a good load, no key is valid."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = path
        self.keys: ApiKeys | None = None
        #: Why the last load failed (never a hash), or None.
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"ApiKeyFile({self.path!s})"

    def load(self) -> ApiKeys | None:
        try:
            self.keys, self.error = ApiKeys.load(self.path), None
        except AuthConfigError as exc:
            self.keys, self.error = None, str(exc)
        return self.keys

    def current(self) -> ApiKeys | None:
        return self.keys if self.keys is not None else self.load()


class Authenticator:
    """Authenticates web requests without letting unknown keys cost the event loop (above)."""

    def __init__(
        self,
        keys: Callable[[], ApiKeys | None],
        *,
        rate: float,
        burst: int,
        max_pending: int = MAX_PENDING,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._keys = keys
        self.limiter = (
            RateLimiter(rate, burst) if clock is None else RateLimiter(rate, burst, clock=clock)
        )
        self.max_pending = max_pending
        self._pending = 0
        self._executor: ThreadPoolExecutor | None = None

    async def authenticate(self, authorization: str | None, source: str) -> Principal:
        keys = self._keys()
        if keys is None:
            raise Unauthorized("no API keys configured")
        raw = keys.bearer(authorization)
        marker = keys.marker(raw)
        known = keys.cached(marker)
        if known is not None:
            return known
        if self._pending >= self.max_pending:
            raise RateLimited(1.0)
        if not self.limiter.allow(source):
            raise RateLimited(max(1.0, self.limiter.retry_after(source)))
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="zoneapp-auth")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            entry = await loop.run_in_executor(self._executor, keys.verify, raw)
        finally:
            self._pending -= 1
        keys.remember(marker, entry)
        if entry is None:
            raise Unauthorized("unknown key")
        return entry.principal()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
