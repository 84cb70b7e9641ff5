"""The token vault's cache, as a wrapper: the mappings this process knows are stored.

:class:`CachingTokenVault` implements :class:`~zoneapp.vault.api.TokenVault` around any
back end. ``store`` sends only the entries whose (tenant, token) it does not know, and
answers the rest from a bounded LRU of fingerprints, so repeat values cost no round trip;
a known token under a different fingerprint is a collision, found without asking. The
same LRU is the ``known`` view the tokenize transform reads to skip known tokens.

Only mappings the vault confirmed (the entry's own fingerprint) are cached. An erasure
through this wrapper empties the cache: erasures are rare, and the next batch re-learns
its tokens with one idempotent write. An erasure made by another process is not seen
here (``subject_keys`` is asked every batch and notices a subject's lost key).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence

from zoneapp.vault.api import TokenVault
from zoneapp.vault.base import KnownTokens, StoredToken, TokenKey, VaultEntry

__all__ = ["CachingTokenVault", "StoredTokenCache", "TokenVaultWrapper"]


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

    def clear(self) -> None:
        self._items.clear()


class TokenVaultWrapper(TokenVault):
    """Delegates every call to ``inner``; a wrapper overrides only what it adds."""

    def __init__(self, inner: TokenVault) -> None:
        self._inner = inner

    @property
    def inner(self) -> TokenVault:
        return self._inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._inner!r})"

    async def store(self, entries: Sequence[VaultEntry]) -> list[VaultEntry]:
        return await self._inner.store(entries)

    async def fetch(self, tenant: str, token: str) -> StoredToken | None:
        return await self._inner.fetch(tenant, token)

    async def find_tenant(self, token: str) -> str | None:
        return await self._inner.find_tenant(token)

    async def subject_keys(
        self, wanted: Collection[tuple[str, str]], create: Callable[[str, str], str]
    ) -> dict[tuple[str, str], str]:
        return await self._inner.subject_keys(wanted, create)

    async def fetch_subject_key(self, tenant: str, subject: str) -> str | None:
        return await self._inner.fetch_subject_key(tenant, subject)

    async def erase_subject(self, tenant: str, subject: str) -> int:
        return await self._inner.erase_subject(tenant, subject)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()

    @property
    def known(self) -> KnownTokens:
        return self._inner.known

    @property
    def round_trips(self) -> int:
        return self._inner.round_trips

    @property
    def writes(self) -> int:
        return self._inner.writes


class CachingTokenVault(TokenVaultWrapper):
    """Answers ``store`` for known mappings from :class:`StoredTokenCache` (module docstring)."""

    def __init__(self, inner: TokenVault, capacity: int = 200_000) -> None:
        super().__init__(inner)
        self.cache = StoredTokenCache(capacity)

    @property
    def known(self) -> KnownTokens:
        return self.cache

    async def store(self, entries: Sequence[VaultEntry]) -> list[VaultEntry]:
        cache = self.cache
        # What the cache knows is read once, before this batch adds to (and evicts from) it.
        knows = [cache.fingerprint(e.tenant, e.token) for e in entries]
        unknown = [e for e, fp in zip(entries, knows, strict=True) if fp is None]
        clashed: set[tuple[str, str, str]] = set()
        if unknown:
            clashed = {(c.tenant, c.token, c.fingerprint) for c in await self._inner.store(unknown)}
            for e in unknown:
                if (e.tenant, e.token, e.fingerprint) not in clashed:
                    cache.add(e.tenant, e.token, e.fingerprint)
        return [
            e
            for e, fp in zip(entries, knows, strict=True)
            if (e.tenant, e.token, e.fingerprint) in clashed
            or (fp is not None and fp != e.fingerprint)
        ]

    async def erase_subject(self, tenant: str, subject: str) -> int:
        try:
            return await self._inner.erase_subject(tenant, subject)
        finally:
            self.cache.clear()
