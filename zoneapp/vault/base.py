"""The token vault's records: what is stored (token → encrypted value, per tenant) and
its errors. The interface is ``api.py``, the cache ``cache.py``.

Tokens are computed in process (a keyed HMAC), so the vault is written, never
asked, on the hot path: the mappings of a batch are stored in one pipeline
before any record carrying them is produced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final, Protocol

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


class KnownTokens(Protocol):
    """Tokens the vault is known to hold, with the fingerprint of the value behind each
    (the cache wrapper's view; the tokenize transform reads it on the hot path)."""

    def fingerprint(self, tenant: str, token: str) -> str | None: ...


class _NoKnownTokens:
    def fingerprint(self, tenant: str, token: str) -> str | None:
        return None

    def __repr__(self) -> str:
        return "NO_KNOWN_TOKENS"


#: What a vault without a cache knows without asking: nothing.
NO_KNOWN_TOKENS: Final[KnownTokens] = _NoKnownTokens()
