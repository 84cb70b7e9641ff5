"""Key management for zoneapp: the key APIs, their back ends, wrappers, envelope encryption.

``api`` is the runtime interface (``KeyProvider``) and ``admin`` the provisioning one
(``KeyAdmin``); ``base`` holds their errors and labels. ``memory`` and ``pkcs11`` are the
back ends, implementing both; ``wrappers`` adds counting, zone gating and retry around a
back end. ``envelope.KeyRing`` is what the pipeline uses on the hot path.

Chosen by URL, as Faust chooses stores: :func:`build_key_provider` gives a worker's
composed runtime stack, :func:`build_key_admin` the plain back end for admin commands.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import parse_qs, urlsplit

from zoneapp.keys.admin import KeyAdmin, KeyBackend
from zoneapp.keys.api import KeyProvider
from zoneapp.keys.base import (
    DecryptionError,
    KeyLoginError,
    KeyProviderError,
    KeyUnavailableError,
    UnknownKeyVersionError,
    ZoneNotPermittedError,
    validate_zone,
)
from zoneapp.keys.envelope import (
    CIPHERTEXT_PREFIX,
    CIPHERTEXT_PREFIX_V1,
    CIPHERTEXT_PREFIXES,
    Aad,
    CiphertextHeader,
    KeyRing,
    KeyRingNotPreparedError,
    Purpose,
    is_ciphertext,
    parse_ciphertext_header,
)
from zoneapp.keys.memory import MemoryKeyProvider, MemoryKeyStore
from zoneapp.keys.retry import Backoff
from zoneapp.keys.wrappers import DEFAULT_KEY_BACKOFF, KeyCalls, ZoneGate, runtime_stack
from zoneapp.settings import Secret

__all__ = [
    "CIPHERTEXT_PREFIX",
    "CIPHERTEXT_PREFIXES",
    "CIPHERTEXT_PREFIX_V1",
    "DEVELOPMENT_ONLY",
    "Aad",
    "CiphertextHeader",
    "DecryptionError",
    "KeyAdmin",
    "KeyBackend",
    "KeyCalls",
    "KeyLoginError",
    "KeyProvider",
    "KeyProviderError",
    "KeyRing",
    "KeyRingNotPreparedError",
    "KeyUnavailableError",
    "MemoryKeyProvider",
    "MemoryKeyStore",
    "Purpose",
    "Secret",
    "UnknownKeyVersionError",
    "ZoneGate",
    "ZoneNotPermittedError",
    "build_key_admin",
    "build_key_backend",
    "build_key_provider",
    "is_ciphertext",
    "parse_ciphertext_header",
    "validate_zone",
    "warn_development_backend",
]

log = logging.getLogger(__name__)

#: The refusal when a memory back end is selected outside development (keys and vault).
DEVELOPMENT_ONLY = (
    "{what} memory:// is for development and tests only (its keys live in this process and "
    "are gone when it stops); set ZONEAPP_ENV=development to use it, or configure {real}"
)


def warn_development_backend(what: str) -> None:
    """The loud line every process that runs on a memory back end logs."""
    log.warning(
        "!!! DEVELOPMENT ONLY: %s is memory:// (ZONEAPP_ENV=development); nothing it holds "
        "is protected or survives a restart: never run this in production !!!",
        what,
    )


_NAMED_STORES: dict[str, MemoryKeyStore] = {}
_NAMED_STORES_LOCK = threading.Lock()


def build_key_provider(
    url: str,
    pin: Secret | None,
    *,
    development: bool = False,
    calls: KeyCalls | None = None,
    backoff: Backoff = DEFAULT_KEY_BACKOFF,
) -> ZoneGate:
    """The runtime provider a worker (or an access command) uses: the back end of ``url``
    wrapped as :func:`~zoneapp.keys.wrappers.runtime_stack` composes it (zone gate, retry,
    counting into ``calls``). Only the zones given to ``open()`` are usable."""
    backend = build_key_backend(url, pin, development=development)
    return runtime_stack(backend, calls=calls, backoff=backoff)


def build_key_admin(url: str, pin: Secret | None, *, development: bool = False) -> KeyAdmin:
    """The back end of ``url`` for provisioning and rotation (no wrappers: admin.py)."""
    return build_key_backend(url, pin, development=development)


def build_key_backend(url: str, pin: Secret | None, *, development: bool = False) -> KeyBackend:
    """The plain back end a URL names (the registry behind both builders).

    * ``memory://`` - MemoryKeyProvider on a fresh process-local store;
      ``memory://<name>`` shares one named store per process (several in-process workers).
      Only with ``development=True`` (``ZONEAPP_ENV=development``), and logged loudly.
    * ``pkcs11:///usr/lib/softhsm/libsofthsm2.so?token=zoneapp`` - Pkcs11KeyProvider;
      the PIN comes from ``pin`` (e.g. ``Secret.from_env_or_file(...)``), never the URL.

    Unknown scheme / missing token / missing PIN for pkcs11 → ValueError with a clear message.
    Messages never quote the URL's query, in case someone put a secret there.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.path not in ("", "/") or parts.query:
            raise ValueError("memory key provider URL takes no path or query: use memory://[name]")
        if not development:
            raise ValueError(
                DEVELOPMENT_ONLY.format(what="ZONEAPP_KEYS:", real="pkcs11:///path?token=")
            )
        warn_development_backend("the key provider (ZONEAPP_KEYS)")
        name = parts.netloc
        if not name:
            return MemoryKeyProvider(pin=pin)
        with _NAMED_STORES_LOCK:
            store = _NAMED_STORES.setdefault(name, MemoryKeyStore())
        return MemoryKeyProvider(store)
    if scheme == "pkcs11":
        params = parse_qs(parts.query, keep_blank_values=True)
        if any(k.lower().startswith("pin") for k in params):
            raise ValueError(
                "pkcs11 key provider URL must not carry a PIN; "
                "use ZONEAPP_PKCS11_PIN or ZONEAPP_PKCS11_PIN_FILE"
            )
        if parts.netloc:
            raise ValueError(
                "pkcs11 key provider URL needs an absolute module path: "
                "pkcs11:///path/to/module.so?token=LABEL"
            )
        if not parts.path.startswith("/") or parts.path == "/":
            raise ValueError("pkcs11 key provider URL is missing the module path")
        tokens = [t for t in params.get("token", []) if t]
        if len(tokens) != 1:
            raise ValueError("pkcs11 key provider URL needs exactly one token=LABEL parameter")
        unknown = sorted(set(params) - {"token"})
        if unknown:
            raise ValueError(f"pkcs11 key provider URL has unknown parameters: {unknown}")
        if pin is None:
            raise ValueError(
                f"pkcs11 token {tokens[0]!r} needs a PIN "
                "(set ZONEAPP_PKCS11_PIN or ZONEAPP_PKCS11_PIN_FILE)"
            )
        from zoneapp.keys.pkcs11 import (
            Pkcs11KeyProvider,  # only here: python-pkcs11 is loaded lazily
        )

        return Pkcs11KeyProvider(parts.path, tokens[0], pin)
    raise ValueError(
        f"unknown key provider URL scheme {parts.scheme!r}: use memory:// or pkcs11:///path?token="
    )
