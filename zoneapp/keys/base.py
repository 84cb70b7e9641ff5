"""The key store's vocabulary: errors, sizes, key labels and zone names.

Shared by the runtime interface (``api.py``), the admin interface (``admin.py``), the
wrappers and both back ends; like them it has no third-party dependencies.

Key objects in a store, per zone:

* ``zoneapp:kek:<zone>:v<N>`` - AES-256 key-encryption key, version ``N`` (1, 2, ...).
  Never leaves the store; only wraps/unwraps data keys (AES-256-GCM).
* ``zoneapp:hmac:<zone>:v1`` - 32-byte HMAC-SHA256 key. Never leaves the store;
  only derives working keys (``HMAC(key, purpose)``) that do live in process memory.

Error messages name the store, token label and zone, never PINs or key bytes.
"""

from __future__ import annotations

import re

__all__ = [
    "DEK_BYTES",
    "HMAC_KEY_BYTES",
    "WRAPPED_DEK_MIN_BYTES",
    "WRAP_NONCE_BYTES",
    "WRAP_TAG_BYTES",
    "DecryptionError",
    "KeyLoginError",
    "KeyProviderError",
    "KeyUnavailableError",
    "UnknownKeyVersionError",
    "ZoneNotPermittedError",
    "hmac_label",
    "kek_label",
    "validate_zone",
]

DEK_BYTES = 32
HMAC_KEY_BYTES = 32
WRAP_NONCE_BYTES = 12
WRAP_TAG_BYTES = 16
#: A wrapped key is nonce || ciphertext || tag; anything shorter is rejected without a store call.
WRAPPED_DEK_MIN_BYTES = WRAP_NONCE_BYTES + WRAP_TAG_BYTES + 1

# Zone names end up in key labels and in every ciphertext header: keep them short and inert.
_ZONE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class KeyProviderError(Exception):
    """Never includes key material or PINs in its message."""


class KeyUnavailableError(KeyProviderError):
    """HSM/token unreachable, login failed, session lost: transient; callers retry with backoff."""


class KeyLoginError(KeyUnavailableError):
    """The store refused the PIN (wrong, locked, expired). Not retried by the retry
    wrapper: HSMs count failed logins and lock the token after a few."""


class ZoneNotPermittedError(KeyProviderError):
    """This process did not open that zone's keys."""


class UnknownKeyVersionError(KeyProviderError):
    """The zone has no key of that version (never provisioned, or destroyed)."""


class DecryptionError(KeyProviderError):
    """Tampered ciphertext / wrong AAD / wrong zone."""


def validate_zone(zone: str) -> str:
    """Reject zone names that could break key labels or the ciphertext header."""
    if not isinstance(zone, str) or not _ZONE_RE.fullmatch(zone):
        raise ValueError(
            f"invalid zone name {zone!r}: use 1-64 of [A-Za-z0-9._-], starting alphanumeric"
        )
    return zone


def kek_label(zone: str, version: int) -> str:
    """Store label of a zone's KEK version."""
    if version < 1:
        raise ValueError("KEK versions start at 1")
    return f"zoneapp:kek:{validate_zone(zone)}:v{version}"


def hmac_label(zone: str) -> str:
    """Store label of a zone's HMAC key (single version: derived keys must stay stable)."""
    return f"zoneapp:hmac:{validate_zone(zone)}:v1"
