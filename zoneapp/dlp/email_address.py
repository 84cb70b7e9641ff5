"""EMAIL: e-mail addresses, ASCII or internationalized (RFC 6531), punycode included."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import ClassVar

from zoneapp.dlp._base import Detector

__all__ = ["EmailDetector"]

# The last character of a local part: RFC 5322 atext, or any Unicode letter or digit
# (RFC 6531).  Only that one is checked: matching the whole local part would make
# the search quadratic on long texts, and a finding needs no more.
_LOCAL_END = re.compile(r"[\w!#$%&'*+/=?^`{|}~-]")
# A domain label: Unicode letters and digits, hyphens inside (IDN labels as typed, or
# their punycode form xn--...).
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
# The TLD: two or more letters, or a punycode TLD (xn--p1ai).
_TLD = r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})"
_DOMAIN = re.compile(rf"((?:{_LABEL}\.)+){_TLD}(?![^\W\d_]|-)", re.IGNORECASE)
# "icon@2x.png": an image density suffix, not a domain.
_DENSITY = re.compile(
    r"[0-9]+(?:\.[0-9]+)?x\.(?:png|jpe?g|gif|svg|webp|avif|bmp|ico|tiff?)$", re.IGNORECASE
)


class EmailDetector(Detector):
    """``local@domain.tld`` with a dotted domain; letters of any script, case-insensitive.

    ``@handle`` and ``user@localhost`` (no dot) are not addresses, nor ``logo@2x.png``.
    Full-width ``@`` (U+FF20) becomes ``@`` in the normalized view; a percent-encoded address
    is found in the percent-decoded view.
    """

    name = "EMAIL"
    prefilters: ClassVar[dict[str, str]] = {
        "at": r"[^\x00-\x20@]@(?:[^\x00-\x20@.]+\.)+[^\x00-\x20@.]"
    }

    def find(self, text: str, path: str, modes: Collection[str]) -> bool:
        at = text.find("@", 1)
        while at != -1:
            if _LOCAL_END.match(text, at - 1):
                m = _DOMAIN.match(text, at + 1)
                if m is not None and not _DENSITY.match(m.group()):
                    return True
            at = text.find("@", at + 1)
        return False
