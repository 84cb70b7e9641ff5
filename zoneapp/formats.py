"""Text forms every layer shares: unpadded base64url and UTC timestamps.

The bottom of the layers (it imports nothing of zoneapp), so keys, transforms, web and the
dev tools write tokens, ciphertexts, cursors and event times the same way.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt

__all__ = ["b64url", "parse_utc", "unb64url", "utc_iso"]


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5): URL-, header- and JSON-safe."""
    # base64.urlsafe_b64encode, without its two Python frames: tokens and MACs are hot.
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def unb64url(text: str, *, canonical: bool = False) -> bytes:
    """The bytes of unpadded base64url; ``ValueError`` on anything else. ``canonical``
    also refuses altered unused bits, so every change to the text changes the bytes."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if canonical and b64url(raw) != text:
        raise ValueError("non-canonical base64url")
    return raw


def utc_iso(when: float | dt.datetime | None = None, *, timespec: str = "milliseconds") -> str:
    """``2026-12-01T12:00:00.000Z``: an epoch, an aware datetime, or now, in UTC."""
    if when is None:
        moment = dt.datetime.now(dt.UTC)
    elif isinstance(when, dt.datetime):
        moment = when.astimezone(dt.UTC)
    else:
        moment = dt.datetime.fromtimestamp(when, dt.UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_utc(text: str) -> float:
    """The epoch of an ISO-8601 time; one without an offset is taken as UTC."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
