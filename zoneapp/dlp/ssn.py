"""US_SSN: US Social Security numbers."""

from __future__ import annotations

from typing import ClassVar

from zoneapp.dlp._base import DIGIT_GATE, Detector

__all__ = ["SsnDetector"]

# Numbers that were published (the Woolworth wallet card, a 1940s ad) and used by
# thousands of people; they appear in test data, never as someone's real SSN.
_PUBLISHED = frozenset({"078051120", "219099999"})

# Field-name fragments that make a bare 9-digit number worth checking.
_SSN_FIELD_HINTS = ("ssn", "social")


class SsnDetector(Detector):
    """``AAA-GG-SSSS`` or ``AAA GG SSSS`` anywhere; 9 bare digits only in SSN-named fields.

    Bare 9-digit numbers are too common (ids, routing numbers, amounts in cents)
    to flag without the field name saying it is an SSN.
    """

    name = "US_SSN"
    gate: ClassVar[str | None] = DIGIT_GATE
    pattern = (
        DIGIT_GATE
        + r"(?<![0-9A-Za-z+]..)"  # starts a token ...
        + r"(?<![0-9][ -]..)"  # ... and does not continue a grouped number
        + r"[0-9]"
        + r"(?:-[0-9]{2}-[0-9]{4}(?![0-9A-Za-z]|-[0-9])"
        + r"| [0-9]{2} [0-9]{4}(?![0-9A-Za-z]| [0-9])"
        + r"|[0-9]{6}(?![0-9A-Za-z]))"
    )

    def validate(self, candidate: str) -> bool:
        """SSA rules (never issued: area 000, 666, 9xx; group 00; serial 0000), minus
        published numbers and one digit repeated (placeholders, not people)."""
        digits = candidate.replace("-", "").replace(" ", "")
        area, group, serial = digits[:3], digits[3:5], digits[5:]
        return not (
            area in ("000", "666")
            or area[0] == "9"
            or group == "00"
            or serial == "0000"
            or digits in _PUBLISHED
            or digits == digits[0] * 9
        )

    def validate_in_context(self, candidate: str, path: str) -> bool:
        """A bare 9-digit candidate counts only when the field path names an SSN."""
        if candidate.isdigit():
            lowered = path.lower()
            if not any(hint in lowered for hint in _SSN_FIELD_HINTS):
                return False
        return self.validate(candidate)
