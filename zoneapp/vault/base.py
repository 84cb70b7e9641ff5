"""The token vault: token → encrypted value, per tenant.

Tokens are computed in process (a keyed HMAC), so the vault is written, never
asked, on the hot path: the mappings of a batch are stored in one pipeline
before any record carrying them is produced.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class VaultEntry:
    """A token mapping to store before the record carrying the token is produced."""

    tenant: str
    field_class: str
    token: str
    fingerprint: str
    ciphertext: str
    #: Keyed hash of the record's data subject (policy ``subject_id``), for erasure.
    subject: str | None = None
    #: The zone whose keys encrypted the value (metadata for operators).
    zone: str | None = None

    def __repr__(self) -> str:
        return f"VaultEntry(tenant={self.tenant!r}, field_class={self.field_class!r})"


class VaultUnavailableError(RuntimeError):
    """The vault cannot be reached or refused a command; callers retry with backoff."""


@dataclass(frozen=True, slots=True)
class StoredToken:
    tenant: str
    token: str
    field_class: str
    fingerprint: str
    ciphertext: str
    created: float
    zone: str | None = None

    def __repr__(self) -> str:
        return f"StoredToken(tenant={self.tenant!r}, field_class={self.field_class!r})"

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "c": self.field_class,
                "f": self.fingerprint,
                "x": self.ciphertext,
                "t": self.created,
                "z": self.zone,
            }
        )

    @classmethod
    def decode(cls, tenant: str, token: str, raw: bytes) -> StoredToken:
        data = orjson.loads(raw)
        return cls(tenant, token, data["c"], data["f"], data["x"], float(data["t"]), data.get("z"))

    @classmethod
    def of(cls, entry: VaultEntry) -> StoredToken:
        return cls(
            entry.tenant,
            entry.token,
            entry.field_class,
            entry.fingerprint,
            entry.ciphertext,
            time.time(),
            entry.zone,
        )


TokenKey = tuple[str, str]  # (tenant, token)


class StoredTokenCache:
    """Bounded LRU of (tenant, token) → fingerprint of the mappings known to be in the vault,
    so repeat values cost nothing and a different value under a known token is caught.

    Keyed by tenant too: the same token text in two tenants is two mappings.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[TokenKey, str] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def fingerprint(self, tenant: str, token: str) -> str | None:
        return self._items.get((tenant, token))

    def add(self, tenant: str, token: str, fingerprint: str) -> None:
        items = self._items
        key = (tenant, token)
        items[key] = fingerprint
        items.move_to_end(key)
        if len(items) > self.capacity:
            items.popitem(last=False)

    def discard(self, tenant: str, token: str) -> None:
        self._items.pop((tenant, token), None)


class TokenVault(ABC):
    """Stores token mappings; the value is always a KeyRing ciphertext, never plaintext."""

    def __init__(self) -> None:
        self.cache = StoredTokenCache()
        self.writes = 0
        self.round_trips = 0

    async def store(self, entries: Sequence[VaultEntry]) -> list[VaultEntry]:
        """Store new mappings idempotently (first writer wins, atomically).

        Returns the entries whose token maps to a different value - in the vault, in the
        cache, or earlier in the same batch: a collision, which the caller must not
        forward. Every entry's fingerprint is compared, duplicates included.
        """
        fresh: dict[TokenKey, VaultEntry] = {}
        for e in entries:
            key = (e.tenant, e.token)
            if key not in fresh and self.cache.fingerprint(*key) is None:
                fresh[key] = e
        stored = await self._store_new(list(fresh.values())) if fresh else {}
        for key, fingerprint in stored.items():
            if fingerprint is not None:
                self.cache.add(*key, fingerprint)
        conflicts = []
        for e in entries:
            key = (e.tenant, e.token)
            holds = stored[key] if key in stored else self.cache.fingerprint(*key)
            if holds != e.fingerprint:
                conflicts.append(e)
        return conflicts

    @abstractmethod
    async def _store_new(self, entries: Sequence[VaultEntry]) -> dict[TokenKey, str | None]:
        """SET-if-absent each entry (one per key); return the fingerprint each key now
        holds (None if it vanished meanwhile, e.g. erased: then nothing is forwarded)."""

    @abstractmethod
    async def fetch(self, tenant: str, token: str) -> StoredToken | None: ...

    @abstractmethod
    async def find_tenant(self, token: str) -> str | None:
        """The tenant a token belongs to (from the token index), for metadata lookups."""

    @abstractmethod
    async def subject_keys(
        self, wanted: Collection[tuple[str, str]], create: Callable[[str, str], str]
    ) -> dict[tuple[str, str], str]:
        """The stored (wrapped) key of each (tenant, subject hash); missing ones are created
        with ``create`` and stored if still absent (first writer wins)."""

    @abstractmethod
    async def fetch_subject_key(self, tenant: str, subject: str) -> str | None: ...

    @abstractmethod
    async def erase_subject(self, tenant: str, subject: str) -> int:
        """Delete every mapping indexed under a subject's keyed hash, and the subject's key;
        returns how many token mappings went.

        Tokens and encrypted fields already downstream stay, but can no longer be reversed.
        """

    @abstractmethod
    async def ping(self) -> None:
        """Raise VaultUnavailableError when the vault cannot serve."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
