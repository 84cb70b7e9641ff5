"""CREDIT_CARD: payment card numbers (PANs)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

from zoneapp.dlp._base import DIGIT_GATE, Detector

__all__ = ["CreditCardDetector", "is_card_number", "luhn_ok"]

_DINERS = range(14, 20)
_LONG = range(16, 20)
_MAESTRO = range(12, 20)

# (first prefix, last prefix, valid lengths): the issuer ranges.  The issuer check
# matters as much as Luhn: it is what keeps 13-digit epoch-millisecond timestamps
# (1763788800000) and most order ids from being reported as cards.
_ISSUERS: tuple[tuple[int, int, Iterable[int]], ...] = (
    (4, 4, (13, 16, 19)),  # Visa
    (51, 55, (16,)),  # Mastercard
    (2221, 2720, (16,)),  # Mastercard 2-series
    (34, 34, (15,)),  # American Express
    (37, 37, (15,)),
    (6011, 6011, _LONG),  # Discover
    (644, 649, _LONG),
    (65, 65, _LONG),
    (300, 305, _DINERS),  # Diners Club
    (36, 36, _DINERS),
    (38, 39, _DINERS),
    (3528, 3589, _LONG),  # JCB
    (62, 62, _LONG),  # UnionPay
    (50, 50, _MAESTRO),  # Maestro
    (56, 69, _MAESTRO),
)


def _prefix_table() -> dict[str, frozenset[int]]:
    """Valid lengths by 4-digit prefix (every candidate has 13+ digits), so the
    issuer check is a single dict lookup."""
    by_prefix: dict[str, set[int]] = {}
    for first, last, lengths in _ISSUERS:
        for prefix in range(first, last + 1):
            by_prefix.setdefault(str(prefix), set()).update(lengths)
    table: dict[str, frozenset[int]] = {}
    for four in range(1000, 10000):
        key = str(four)
        lengths = set().union(*(by_prefix.get(key[:n], ()) for n in range(1, 5)))
        if lengths:
            table[key] = frozenset(lengths)
    return table


_LENGTHS_BY_PREFIX = _prefix_table()
_NONE: frozenset[int] = frozenset()
_DOUBLED = str.maketrans("0123456789", "0246813579")  # 2d, digits summed


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) check of an all-digit string."""
    total = sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2].translate(_DOUBLED)))
    return total % 10 == 0


def is_card_number(digits: str) -> bool:
    """True if the all-digit string (13-19 digits) has a real issuer prefix and
    length and passes Luhn."""
    return len(digits) in _LENGTHS_BY_PREFIX.get(digits[:4], _NONE) and luhn_ok(digits)


_SEPARATOR = re.compile(r"[ -]")


class CreditCardDetector(Detector):
    """13-19 digits, compact or in groups of 3-6 separated by single spaces or dashes.

    The candidate must not touch a letter or digit on either side, so digits inside
    a longer alphanumeric token or a 20+ digit run are never candidates.
    """

    name = "CREDIT_CARD"
    gate: ClassVar[str | None] = DIGIT_GATE
    pattern = (
        DIGIT_GATE
        + r"(?<![0-9A-Za-z+]..)"  # the gate starts a token (a leading + means a phone)
        + r"(?:[0-9]{11,17}"  # compact: 13-19 digits in all
        + r"|[0-9]{1,4}(?:[ -][0-9]{3,6}){2,5})"  # grouped: 3+ groups of 3-6 digits
        + r"(?![0-9A-Za-z])"
    )

    def validate(self, candidate: str) -> bool:
        """Valid if the number, or its leading whole groups, form a card number.

        Trailing groups are often a CVV or expiry ("4111 1111 1111 1111 123");
        groups in front of a card are covered because the scanner also tries the
        candidate that starts at the next group.
        """
        digits = ""
        for group in _SEPARATOR.split(candidate):
            digits += group
            if len(digits) > 19:
                return False
            if len(digits) >= 13 and is_card_number(digits):
                return True
        return False
