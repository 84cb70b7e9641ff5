"""The Redis token vault.

Keys and commands are those of :mod:`zoneapp.vault.layout` (the ACL is generated from
it). Writes are ``SET NX`` in one pipeline per batch: two workers seeing the same value
first at the same time write the same token, and the first write wins. The subject
index and the token index are written only for mappings that hold the entry's own
value, so a colliding record can never add another value's token to its subject (and
have it erased with that subject).

Every command touches one key, and the one transaction (erasure) stays in one tenant's
slot: the layout works on Redis Cluster, as the integration test on a cluster-mode
redis-server checks. The client is a standalone one: ``redis://``/``rediss://`` to one
primary. A plain back end: the cache of known mappings is ``cache.CachingTokenVault``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from zoneapp.settings import Secret
from zoneapp.vault.api import TokenVault, collisions, first_of_each
from zoneapp.vault.base import StoredToken, TokenKey, VaultEntry, VaultUnavailableError
from zoneapp.vault.layout import (
    index_key,
    legacy_index_key,
    subject_secret_key,
    subject_set_key,
    token_key,
)

__all__ = ["RedisTokenVault"]


def _bytes(raw: Any) -> bytes:
    return raw if isinstance(raw, bytes) else str(raw).encode()


def _unavailable(exc: RedisError) -> VaultUnavailableError:
    return VaultUnavailableError(f"redis vault: {type(exc).__name__}")


class RedisTokenVault(TokenVault):
    def __init__(self, url: str, *, timeout: float = 5.0, password: Secret | None = None) -> None:
        self._url = url
        self._round_trips = 0
        self._writes = 0
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        if password is not None:
            # Overrides any password in the URL (e.g. one read from a secrets file).
            self._redis.connection_pool.connection_kwargs["password"] = password.reveal().decode()

    def __repr__(self) -> str:
        # The URL may carry a password: show only the scheme.
        return f"RedisTokenVault({self._url.split('://', 1)[0]}://…)"

    @property
    def round_trips(self) -> int:
        return self._round_trips

    @property
    def writes(self) -> int:
        return self._writes

    async def store(self, entries: Sequence[VaultEntry]) -> list[VaultEntry]:
        if not entries:
            return []
        return collisions(entries, await self._set_if_absent(first_of_each(entries)))

    async def _set_if_absent(self, entries: Sequence[VaultEntry]) -> dict[TokenKey, str | None]:
        """SET NX each entry (one per key); the fingerprint each key now holds (None if it
        vanished meanwhile, e.g. erased: then nothing is forwarded)."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            for e in entries:
                pipe.set(token_key(e.tenant, e.token), StoredToken.of(e).encode(), nx=True)
            written = await pipe.execute()
            self._round_trips += 1
            holds: dict[TokenKey, str | None] = {}
            existing = [e for e, ok in zip(entries, written, strict=True) if not ok]
            mine = [e for e, ok in zip(entries, written, strict=True) if ok]
            self._writes += len(mine)
            for e in mine:
                holds[(e.tenant, e.token)] = e.fingerprint
            if existing:
                pipe = self._redis.pipeline(transaction=False)
                for e in existing:
                    pipe.get(token_key(e.tenant, e.token))
                for e, raw in zip(existing, await pipe.execute(), strict=True):
                    holds[(e.tenant, e.token)] = (
                        None
                        if raw is None
                        else StoredToken.decode(e.tenant, e.token, _bytes(raw)).fingerprint
                    )
                self._round_trips += 1
            # Indexes only for mappings holding this entry's own value (see module docstring).
            same = [e for e in entries if holds[(e.tenant, e.token)] == e.fingerprint]
            if same:
                pipe = self._redis.pipeline(transaction=False)
                for e in same:
                    pipe.set(index_key(e.token), e.tenant, nx=True)
                    if e.subject is not None:
                        pipe.sadd(subject_set_key(e.tenant, e.subject), e.token)
                await pipe.execute()
                self._round_trips += 1
        except RedisError as exc:
            raise _unavailable(exc) from None
        return holds

    async def fetch(self, tenant: str, token: str) -> StoredToken | None:
        try:
            raw = await self._redis.get(token_key(tenant, token))
        except RedisError as exc:
            raise _unavailable(exc) from None
        return None if raw is None else StoredToken.decode(tenant, token, _bytes(raw))

    async def subject_keys(
        self, wanted: Collection[tuple[str, str]], create: Callable[[str, str], str]
    ) -> dict[tuple[str, str], str]:
        order = list(wanted)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for tenant, subject in order:
                pipe.get(subject_secret_key(tenant, subject))
            found = await pipe.execute()
            self._round_trips += 1
            out = {
                w: _bytes(v).decode() for w, v in zip(order, found, strict=True) if v is not None
            }
            missing = [w for w in order if w not in out]
            if missing:
                pipe = self._redis.pipeline(transaction=False)
                fresh = {w: create(*w) for w in missing}
                for (tenant, subject), text in fresh.items():
                    key = subject_secret_key(tenant, subject)
                    pipe.set(key, text, nx=True)
                    pipe.get(key)
                results = await pipe.execute()
                self._round_trips += 1
                for i, w in enumerate(missing):
                    stored = results[2 * i + 1]
                    out[w] = _bytes(stored).decode() if stored is not None else fresh[w]
        except RedisError as exc:
            raise _unavailable(exc) from None
        return out

    async def find_tenant(self, token: str) -> str | None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(index_key(token))
            pipe.get(legacy_index_key(token))
            current, legacy = await pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from None
        raw = current if current is not None else legacy
        return None if raw is None else _bytes(raw).decode()

    async def fetch_subject_key(self, tenant: str, subject: str) -> str | None:
        try:
            raw = await self._redis.get(subject_secret_key(tenant, subject))
        except RedisError as exc:
            raise _unavailable(exc) from None
        return None if raw is None else _bytes(raw).decode()

    async def erase_subject(self, tenant: str, subject: str) -> int:
        """One transaction in the tenant's slot (mappings, subject set, subject key), then
        the token index entries (their own slots; a leftover entry names only a tenant)."""
        key = subject_set_key(tenant, subject)
        try:
            tokens = sorted(_bytes(t).decode() for t in await self._redis.smembers(key))
            pipe = self._redis.pipeline(transaction=True)
            for token in tokens:
                pipe.delete(token_key(tenant, token))
            pipe.delete(key)
            pipe.delete(subject_secret_key(tenant, subject))
            results = await pipe.execute()
            if tokens:
                pipe = self._redis.pipeline(transaction=False)
                for token in tokens:
                    pipe.delete(index_key(token))
                    pipe.delete(legacy_index_key(token))
                await pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from None
        return sum(int(r) for r in results[: len(tokens)])

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise _unavailable(exc) from None

    async def close(self) -> None:
        await self._redis.aclose()  # type: ignore[attr-defined]
