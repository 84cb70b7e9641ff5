"""An in-process vault with the same semantics as Redis, for unit tests and dry runs.

A plain back end: no cache (that is ``cache.CachingTokenVault``). The contract suite
(``tests/contract/vault``) runs the same checks on it and on a real Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from zoneapp.vault.api import TokenVault, collisions, first_of_each
from zoneapp.vault.base import StoredToken, TokenKey, VaultEntry, VaultUnavailableError


class MemoryTokenVault(TokenVault):
    def __init__(self) -> None:
        self._round_trips = 0
        self._writes = 0
        self.data: dict[tuple[str, str], bytes] = {}
        self.subjects: dict[tuple[str, str], set[str]] = {}
        self.subject_key_data: dict[tuple[str, str], str] = {}
        #: Set False to make the vault refuse service, as a stopped Redis would.
        self.available = True

    def _check(self) -> None:
        if not self.available:
            raise VaultUnavailableError("memory vault is unavailable")

    def __repr__(self) -> str:
        return f"MemoryTokenVault(mappings={len(self.data)}, available={self.available})"

    @property
    def round_trips(self) -> int:
        return self._round_trips

    @property
    def writes(self) -> int:
        return self._writes

    async def store(self, entries: Sequence[VaultEntry]) -> list[VaultEntry]:
        if not entries:
            return []
        self._check()
        self._round_trips += 1
        holds: dict[TokenKey, str | None] = {}
        for e in first_of_each(entries):
            key = (e.tenant, e.token)
            existing = self.data.get(key)
            if existing is None:
                self.data[key] = StoredToken.of(e).encode()
                self._writes += 1
                holds[key] = e.fingerprint
            else:
                holds[key] = StoredToken.decode(e.tenant, e.token, existing).fingerprint
            if e.subject is not None and holds[key] == e.fingerprint:
                self.subjects.setdefault((e.tenant, e.subject), set()).add(e.token)
        return collisions(entries, holds)

    async def find_tenant(self, token: str) -> str | None:
        self._check()
        return next((tenant for tenant, tok in self.data if tok == token), None)

    async def fetch(self, tenant: str, token: str) -> StoredToken | None:
        self._check()
        raw = self.data.get((tenant, token))
        return None if raw is None else StoredToken.decode(tenant, token, raw)

    async def subject_keys(
        self, wanted: Collection[tuple[str, str]], create: Callable[[str, str], str]
    ) -> dict[tuple[str, str], str]:
        self._check()
        self._round_trips += 1
        out: dict[tuple[str, str], str] = {}
        for w in wanted:
            key = self.subject_key_data.get(w)
            if key is None:  # like Redis: only a missing key is created
                key = self.subject_key_data[w] = create(*w)
            out[w] = key
        return out

    async def fetch_subject_key(self, tenant: str, subject: str) -> str | None:
        self._check()
        return self.subject_key_data.get((tenant, subject))

    async def erase_subject(self, tenant: str, subject: str) -> int:
        self._check()
        self.subject_key_data.pop((tenant, subject), None)
        tokens = self.subjects.pop((tenant, subject), set())
        return sum(1 for t in tokens if self.data.pop((tenant, t), None) is not None)

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None
