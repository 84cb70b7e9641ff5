"""Token vaults, chosen by URL: ``redis://``/``rediss://`` or ``memory://``."""

from __future__ import annotations

from zoneapp.keys import DEVELOPMENT_ONLY, warn_development_backend
from zoneapp.settings import Secret
from zoneapp.vault.base import (
    StoredToken,
    StoredTokenCache,
    TokenKey,
    TokenVault,
    VaultUnavailableError,
)
from zoneapp.vault.memory import MemoryTokenVault


def build_vault(
    url: str, password: Secret | None = None, *, development: bool = False
) -> TokenVault:
    """The vault a URL names; ``memory://`` only with ``development`` (ZONEAPP_ENV)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        from zoneapp.vault.redis import RedisTokenVault

        return RedisTokenVault(url, password=password)
    if scheme == "memory":
        if not development:
            raise ValueError(DEVELOPMENT_ONLY.format(what="ZONEAPP_VAULT:", real="redis://"))
        warn_development_backend("the token vault (ZONEAPP_VAULT)")
        return MemoryTokenVault()
    raise ValueError(
        f"ZONEAPP_VAULT: unknown vault scheme {scheme!r} (use redis://, rediss:// or memory://)"
    )


__all__ = [
    "MemoryTokenVault",
    "StoredToken",
    "StoredTokenCache",
    "TokenKey",
    "TokenVault",
    "VaultUnavailableError",
    "build_vault",
]
