"""PHONE: telephone numbers in E.164 and North-American formats."""

from __future__ import annotations

from typing import ClassVar

from zoneapp.dlp._base import DIGIT_GATE, Detector

__all__ = ["PhoneDetector"]

# A '+' that starts a token.
_PLUS = r"(?<![0-9A-Za-z+])\+"
# One more digit, optionally after up to two separators: "+1 (415) 555-2671".
_E164_DIGIT = r"(?:[ .()-]{0,2}[0-9])"


class PhoneDetector(Detector):
    """E.164 (``+`` and 8-15 digits) and NANP ``(415) 555-2671`` / ``415-555-2671``.

    Numbers without a ``+`` need separators in the 3-3-4 layout: bare 10-digit runs
    are far more often ids than phone numbers, and dates, times, IP addresses,
    amounts and card-length runs do not fit the layout.  The match starts at the
    first two digits (the shared digit gate); what precedes them (``+``, ``+1 ``,
    ``(``) is checked by lookbehinds.
    """

    name = "PHONE"
    gate: ClassVar[str | None] = DIGIT_GATE
    pattern = (
        DIGIT_GATE
        + r"(?:"
        # E.164 with the gate right after the '+': 2 + 6..13 = 8..15 digits.
        + rf"(?<={_PLUS}[1-9].){_E164_DIGIT}{{6,13}}(?![0-9A-Za-z])"
        # E.164 with a one-digit country code (1, 7) and a separator: 1 + 2 + 5..12.
        + rf"|(?:(?<={_PLUS}[17][ .-]..)|(?<={_PLUS}[17]\(..)|(?<={_PLUS}[17] \(..))"
        + rf"{_E164_DIGIT}{{5,12}}(?![0-9A-Za-z])"
        # NANP: area code (2-9)XX, exchange (2-9)XX, line XXXX.
        + r"|(?<=[2-9].)"
        + r"(?:(?<=(?<![0-9A-Za-z])\(..)[0-9]\) ?"  # (415) 555-2671
        + r"|(?<![0-9A-Za-z(]..)"  # 415-555-2671 starting a token,
        + r"(?:(?<![0-9][.-]..)|(?<=(?<![0-9A-Za-z])1[.-]..))"  # not mid-number but 1-415...
        + r"[0-9][ .-])"
        + r"[2-9][0-9]{2}[ .-][0-9]{4}(?![0-9A-Za-z]|[.-][0-9])"
        + r")"
    )
