"""Token metadata for ``GET /tokens/{token}``: tenant, field class, zone, created; never values.

The vault key is ``zoneapp:tok:{<tenant>}:<token>``. With ``?tenant=`` the lookup is one
GET; without it, the vault's token index (``zoneapp:tokidx:{<token>}`` → tenant) finds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoneapp.formats import utc_iso
from zoneapp.policy import CompiledPolicy
from zoneapp.vault import StoredToken, TokenVault


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
            "created": utc_iso(self.created, timespec="seconds"),
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

    def add_policy(self, policy: CompiledPolicy) -> None:
        """A reloaded policy's token classes join the known ones: tokens made under an
        earlier policy keep their zone (officers of it still see their metadata)."""
        for field_class, zones in token_zones(policy).items():
            self.zones.setdefault(field_class, set()).update(zones)

    def _info(self, stored: StoredToken) -> TokenInfo:
        if stored.zone is not None:
            zones: tuple[str, ...] = (stored.zone,)
        else:  # mappings written before the vault recorded zones
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
        return await self.vault.find_tenant(token)

    async def close(self) -> None:
        """Nothing of its own to close: the vault's client is closed with the runtime."""
