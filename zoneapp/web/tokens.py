"""Token metadata for ``GET /tokens/{token}``: tenant, field class, zone, created; never values.

The vault key is ``zoneapp:tok:{<tenant>}:<token>``. With ``?tenant=`` the lookup is one
GET; without it, the tenant is found with a bounded SCAN over ``zoneapp:tok:{*}:<token>``
(a secondary index written by the vault would make that one GET, see README).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoneapp.policy import CompiledPolicy
from zoneapp.vault import MemoryTokenVault, StoredToken, TokenVault, VaultUnavailableError

SCAN_BUDGET_SECONDS = 2.0
_GLOB_SPECIAL = set("*?[]\\")


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


def token_zones(policy: CompiledPolicy | None) -> dict[str, set[str]]:
    """field class -> zones whose tokenize rules produce tokens of that class."""
    zones: dict[str, set[str]] = {}
    for b in policy.boundaries if policy else []:
        for rule in b.all_rules():
            transform: Any = rule.transform
            if rule.name == "tokenize":
                zones.setdefault(str(transform.field_class), set()).add(transform.spec.zone)
    return zones


@dataclass(frozen=True)
class TokenInfo:
    token: str
    tenant: str
    field_class: str
    zones: tuple[str, ...]
    created: float

    def as_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "tenant": self.tenant,
            "field_class": self.field_class,
            "zone": self.zones[0] if len(self.zones) == 1 else None,
            "zones": list(self.zones),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
        }


class TokenDirectory:
    def __init__(
        self, vault: Callable[[], TokenVault], policy: CompiledPolicy | None, vault_url: str
    ) -> None:
        self._vault = vault
        self.zones = token_zones(policy)
        self.vault_url = vault_url

    @property
    def vault(self) -> TokenVault:
        return self._vault()

    def _info(self, stored: StoredToken) -> TokenInfo:
        zones = tuple(sorted(self.zones.get(stored.field_class, set())))
        return TokenInfo(stored.token, stored.tenant, stored.field_class, zones, stored.created)

    async def lookup(self, token: str, tenant: str | None = None) -> TokenInfo | None:
        if tenant is not None:
            stored = await self.vault.fetch(tenant, token)
            return None if stored is None else self._info(stored)
        found = await self._find_tenant(token)
        if found is None:
            return None
        stored = await self.vault.fetch(found, token)
        return None if stored is None else self._info(stored)

    async def _find_tenant(self, token: str) -> str | None:
        if isinstance(self.vault, MemoryTokenVault):
            for tenant, tok in list(self.vault.data):
                if tok == token:
                    return tenant
            return None
        from redis.exceptions import RedisError

        try:
            client = self._client()
            pattern = "zoneapp:tok:{*}:" + glob_escape(token)
            deadline = time.monotonic() + SCAN_BUDGET_SECONDS
            cursor = 0
            while True:
                cursor, keys = await client.scan(cursor, match=pattern, count=5000)
                for key in keys:
                    text = key.decode() if isinstance(key, bytes) else str(key)
                    inner = text[len("zoneapp:tok:{") :]
                    tenant, sep, rest = inner.partition("}:")
                    if sep and rest == token:
                        return "" if tenant == "_" else tenant
                if cursor == 0 or time.monotonic() > deadline:
                    return None
        except RedisError as exc:
            raise VaultUnavailableError(f"redis vault: {type(exc).__name__}") from None

    def _client(self) -> Any:
        """The vault's own Redis client (same URL, password and TLS settings)."""
        client = getattr(self.vault, "_redis", None)
        if client is None:
            raise VaultUnavailableError("this vault cannot be scanned; pass ?tenant=")
        return client

    async def close(self) -> None:
        """Nothing of its own to close: the vault's client is closed with the runtime."""
