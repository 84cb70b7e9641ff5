"""Token vaults, chosen by URL: ``redis://``/``rediss://`` or ``memory://``.

``api`` is the interface, ``base`` its records and errors, ``memory`` and ``redis`` the
back ends, ``cache`` the caching wrapper. :func:`build_vault` gives the plain back end a
URL names; :func:`build_token_vault` the composed one a worker uses (cache around it).
"""

from __future__ import annotations

from zoneapp.keys import DEVELOPMENT_ONLY, warn_development_backend
from zoneapp.settings import Secret
from zoneapp.vault.api import TokenVault
from zoneapp.vault.base import (
    NO_KNOWN_TOKENS,
    KnownTokens,
    StoredToken,
    TokenKey,
    VaultEntry,
    VaultUnavailableError,
)
from zoneapp.vault.cache import CachingTokenVault, StoredTokenCache
from zoneapp.vault.memory import MemoryTokenVault


def build_vault(
    url: str, password: Secret | None = None, *, development: bool = False
) -> TokenVault:
    """The plain back end a URL names; ``memory://`` only with ``development`` (ZONEAPP_ENV)."""
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


def build_token_vault(
    url: str, password: Secret | None = None, *, development: bool = False
) -> CachingTokenVault:
    """The vault a worker uses: the back end of ``url`` behind the cache wrapper."""
    return CachingTokenVault(build_vault(url, password, development=development))


__all__ = [
    "NO_KNOWN_TOKENS",
    "CachingTokenVault",
    "KnownTokens",
    "MemoryTokenVault",
    "StoredToken",
    "StoredTokenCache",
    "TokenKey",
    "TokenVault",
    "VaultEntry",
    "VaultUnavailableError",
    "build_token_vault",
    "build_vault",
]
