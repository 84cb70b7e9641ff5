"""PHONE: telephone numbers in E.164 and North-American formats."""

from __future__ import annotations

from typing import ClassVar

from zoneapp.dlp._base import DIGIT_GATE, Detector

__all__ = ["PhoneDetector"]


def _token_start_before(width: int) -> str:
    """Lookbehind: the character ``width`` back (a ``+``) starts a token.

    Placed after the cheap lookbehind that finds the ``+``, so most positions
    never evaluate it.
    """
    return "(?<![0-9A-Za-z+]" + "." * width + ")"


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
        # Every form has a non-alphanumeric character right before the gate; this
        # one cheap check rejects most gate positions (mid-number, mid-token).
        + r"(?<![0-9A-Za-z]..)"
        + r"(?:"
        # E.164, gate right after the '+': 2 + 6..13 = 8..15 digits.
        + r"(?<=\+[1-9].)"
        + _token_start_before(3)
        + _E164_DIGIT
        + r"{6,13}(?![0-9A-Za-z])"
        # E.164, one-digit country code (1, 7) and a separator: 1 + 2 + 5..12 digits.
        + r"|(?:(?<=\+[17][ .(-]..)"
        + _token_start_before(5)
        + r"|(?<=\+[17] \(..)"
        + _token_start_before(6)
        + ")"
        + _E164_DIGIT
        + r"{5,12}(?![0-9A-Za-z])"
        # NANP: area code [2-9]XX, exchange [2-9]XX, line XXXX.
        + r"|(?<=[2-9].)"
        + r"(?:(?<=\(..)[0-9]\) ?"  # (415) 555-2671
        + r"|(?<!\(..)"  # 415-555-2671, not continuing a dotted/dashed number ...
        + r"(?:(?<![0-9][.-]..)|(?<=1[.-]..)(?<![0-9A-Za-z]....))"  # ... but 1-415-...
        + r"[0-9][ .-])"
        + r"[2-9][0-9]{2}[ .-][0-9]{4}(?![0-9A-Za-z]|[.-][0-9])"
        + r")"
    )
