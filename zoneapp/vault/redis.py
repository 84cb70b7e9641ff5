"""The Redis token vault.

Key layout: ``zoneapp:tok:{<tenant>}:<token>`` holding a small JSON document
(field class, value fingerprint, ciphertext, creation time). The tenant is the
hash tag, so one tenant's tokens live in one Redis Cluster slot and can be
erased or scanned together. Writes are ``SET NX`` in one pipeline per batch:
two workers seeing the same value first at the same time write the same token,
and the first write wins.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from zoneapp.keys.secret import Secret
from zoneapp.transforms import VaultEntry
from zoneapp.vault.base import StoredToken, TokenVault, VaultUnavailableError


def token_key(tenant: str, token: str) -> str:
    return f"zoneapp:tok:{{{tenant or '_'}}}:{token}"


def index_key(token: str) -> str:
    """token → tenant, so metadata can be found from a token alone."""
    return f"zoneapp:tokidx:{token}"


def subject_secret_key(tenant: str, subject: str) -> str:
    """Where a subject's wrapped key lives (same slot as its tokens)."""
    return f"zoneapp:skey:{{{tenant or '_'}}}:{subject}"


def subject_key(tenant: str, subject: str) -> str:
    """The set of a subject's tokens; same hash tag as the tokens, so erasure is one slot."""
    return f"zoneapp:subj:{{{tenant or '_'}}}:{subject}"


class RedisTokenVault(TokenVault):
    def __init__(self, url: str, *, timeout: float = 5.0, password: Secret | None = None) -> None:
        super().__init__()
        self._url = url
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

    async def _store_new(self, entries: Sequence[VaultEntry]) -> list[VaultEntry]:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for e in entries:
                pipe.set(token_key(e.tenant, e.token), StoredToken.of(e).encode(), nx=True)
            for e in entries:
                pipe.set(index_key(e.token), e.tenant, nx=True)
                if e.subject is not None:
                    pipe.sadd(subject_key(e.tenant, e.subject), e.token)
            results = (await pipe.execute())[: len(entries)]
            self.round_trips += 1
            existing = [e for e, ok in zip(entries, results, strict=True) if not ok]
            self.writes += len(entries) - len(existing)
            if not existing:
                return []
            pipe = self._redis.pipeline(transaction=False)
            for e in existing:
                pipe.get(token_key(e.tenant, e.token))
            raws = await pipe.execute()
            self.round_trips += 1
        except RedisError as exc:
            raise VaultUnavailableError(f"redis vault: {type(exc).__name__}") from None
        conflicts = []
        for e, raw in zip(existing, raws, strict=True):
            if (
                raw is not None
                and StoredToken.decode(e.tenant, e.token, raw).fingerprint != e.fingerprint
            ):
                conflicts.append(e)
        return conflicts

    async def fetch(self, tenant: str, token: str) -> StoredToken | None:
        try:
            raw = await self._redis.get(token_key(tenant, token))
        except RedisError as exc:
            raise VaultUnavailableError(f"redis vault: {type(exc).__name__}") from None
        return None if raw is None else StoredToken.decode(tenant, token, raw)

    async def subject_keys(
        self, wanted: Collection[tuple[str, str]], create: Callable[[str, str], str]
    ) -> dict[tuple[str, str], str]:
        order = list(wanted)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for tenant, subject in order:
                pipe.get(subject_secret_key(tenant, subject))
            found = await pipe.execute()
            self.round_trips += 1
            out = {w: v.decode() for w, v in zip(order, found, strict=True) if v is not None}
            missing = [w for w in order if w not in out]
            if missing:
                pipe = self._redis.pipeline(transaction=False)
                fresh = {w: create(*w) for w in missing}
                for (tenant, subject), text in fresh.items():
                    key = subject_secret_key(tenant, subject)
                    pipe.set(key, text, nx=True)
                    pipe.get(key)
                results = await pipe.execute()
                self.round_trips += 1
                for i, w in enumerate(missing):
                    stored = results[2 * i + 1]
                    out[w] = stored.decode() if stored is not None else fresh[w]
        except RedisError as exc:
            raise VaultUnavailableError(f"redis vault: {type(exc).__name__}") from None
        return out

    async def find_tenant(self, token: str) -> str | None:
        try:
            raw = await self._redis.get(index_key(token))
        except RedisError as exc:
            raise VaultUnavailableError(f"redis vault: {type(exc).__name__}") from None
        return None if raw is None else bytes(raw).decode()

    async def fetch_subject_key(self, tenant: str, subject: str) -> str | None:
        try:
            raw = await self._redis.get(subject_secret_key(tenant, subject))
        except RedisError as exc:
            raise VaultUnavailableError(f"redis vault: {type(exc).__name__}") from None
        return None if raw is None else bytes(raw).decode()

    async def erase_subject(self, tenant: str, subject: str) -> int:
        key = subject_key(tenant, subject)
        try:
            tokens = [t.decode() for t in await self._redis.smembers(key)]
            pipe = self._redis.pipeline(transaction=True)
            for token in tokens:
                pipe.delete(token_key(tenant, token))
            pipe.delete(key)
            pipe.delete(subject_secret_key(tenant, subject))
            for token in tokens:
                pipe.delete(index_key(token))
            results = await pipe.execute()
        except RedisError as exc:
            raise VaultUnavailableError(f"redis vault: {type(exc).__name__}") from None
        for token in tokens:
            self.cache.discard(token)
        return sum(int(r) for r in results[: len(tokens)])

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise VaultUnavailableError(f"redis vault: {type(exc).__name__}") from None

    async def close(self) -> None:
        await self._redis.aclose()  # type: ignore[attr-defined]
