"""The token vault interface: what the pipeline and access/ need from a vault.

Back ends (``memory``, ``redis``) implement only this. Caching the mappings known to be
stored is a wrapper (``cache.CachingTokenVault``) that implements the same interface and
delegates; ``zoneapp.vault.build_token_vault`` composes it. The vault is above keys/ in
the layers: nothing here imports keys/, and keys/ reaches the vault only through the
``SubjectKeyStore`` protocol (``keys/subject.py``), which this interface satisfies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence

from zoneapp.vault.base import (
    NO_KNOWN_TOKENS,
    KnownTokens,
    StoredToken,
    TokenKey,
    VaultEntry,
)

__all__ = ["TokenVault", "collisions", "first_of_each"]


class TokenVault(ABC):
    """Stores token mappings; the value is always a KeyRing ciphertext, never plaintext."""

    @abstractmethod
    async def store(self, entries: Sequence[VaultEntry]) -> list[VaultEntry]:
        """Store new mappings idempotently (first writer wins, atomically).

        Returns the entries whose token maps to a different value - in the vault or
        earlier in the same batch - or to nothing any more (erased meanwhile): a
        collision, which the caller must not forward. Every entry's fingerprint is
        compared, duplicates included.
        """

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

    @abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""

    @property
    def known(self) -> KnownTokens:
        """Tokens this client knows the vault holds, without a round trip: none for a back
        end; the cache wrapper's LRU. The tokenize transform skips known tokens."""
        return NO_KNOWN_TOKENS

    @property
    def round_trips(self) -> int:
        """Network round trips (pipelines) the back end made; a measurement, not behaviour."""
        return 0

    @property
    def writes(self) -> int:
        """Mappings the back end wrote that were not there before."""
        return 0


def first_of_each(entries: Sequence[VaultEntry]) -> list[VaultEntry]:
    """The first entry of each (tenant, token): the one a back end tries to write."""
    seen: dict[TokenKey, VaultEntry] = {}
    for e in entries:
        seen.setdefault((e.tenant, e.token), e)
    return list(seen.values())


def collisions(
    entries: Sequence[VaultEntry], holds: Mapping[TokenKey, str | None]
) -> list[VaultEntry]:
    """The entries whose key does not hold their own fingerprint after a store."""
    return [e for e in entries if holds.get((e.tenant, e.token)) != e.fingerprint]
