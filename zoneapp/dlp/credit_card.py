"""CREDIT_CARD: payment card numbers (PANs)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import ClassVar

from zoneapp.dlp._base import LEFT, SEPARATORS, Detector, clock_before, written_runs

__all__ = [
    "ISSUERS",
    "CreditCardDetector",
    "groups_hold_card",
    "holds_card",
    "is_card_number",
    "luhn_ok",
]

_R = range

#: (name, first prefix, last prefix, valid lengths); every one of these schemes uses
#: Luhn, so every candidate is Luhn-checked.  Sources: the
#: issuers' published BIN ranges (ISO/IEC 7812 registrations as summarised by the
#: networks).  The issuer check matters as much as Luhn: it is what keeps 13-digit
#: epoch milliseconds (1763788800000) and most order ids from being cards.
ISSUERS: tuple[tuple[str, int, int, Iterable[int]], ...] = (
    ("Visa", 4, 4, (13, 16, 19)),
    ("Mastercard", 51, 55, (16,)),
    ("Mastercard", 2221, 2720, (16,)),
    ("American Express", 34, 34, (15,)),
    ("American Express", 37, 37, (15,)),
    ("Discover", 6011, 6011, _R(16, 20)),
    ("Discover", 644, 649, _R(16, 20)),
    ("Discover", 65, 65, _R(16, 20)),
    ("Diners Club", 300, 305, _R(14, 20)),
    ("Diners Club", 36, 36, _R(14, 20)),
    ("Diners Club", 38, 39, _R(14, 20)),
    ("JCB", 3528, 3589, _R(16, 20)),
    ("UnionPay", 62, 62, _R(16, 20)),
    ("Maestro", 50, 50, _R(12, 20)),
    ("Maestro", 56, 69, _R(12, 20)),
    ("UATP", 1, 1, (15,)),
    ("Mir", 2200, 2204, _R(16, 20)),
    ("RuPay", 81, 82, (16,)),
    ("RuPay", 508, 508, (16,)),
    ("Troy", 9792, 9792, (16,)),
)

MIN_LENGTH = 12
# Separator runs unbounded here (a superset of find()'s eight): cheaper for Hyperscan.
_DIGIT = f"(?:{SEPARATORS}*[0-9])"
MAX_LENGTH = 19


def _prefix_table() -> dict[str, frozenset[int]]:
    """Valid lengths by 4-digit prefix (every candidate has 12+ digits), so the
    issuer check is one dict lookup."""
    by_prefix: dict[str, set[int]] = {}
    for _name, first, last, lengths in ISSUERS:
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
_DOUBLED_ASCII = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) check of an all-digit string."""
    if digits.isascii() and (raw := digits.encode("ascii")).isdigit():
        # Sums of the digits' code points, less 48 each: no int() per digit (card tokens
        # run this on every candidate).
        total = sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_DOUBLED_ASCII)) - 48 * len(raw)
        return total % 10 == 0
    total = sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2].translate(_DOUBLED)))
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass :func:`luhn_ok`."""
    return next(d for d in "0123456789" if luhn_ok(partial + d))


def _gs1_ok(digits: str) -> bool:
    """GS1 check digit (EAN-13, GTIN-14): weights 3, 1 from the right, before the check."""
    body = digits[:-1]
    total = 3 * sum(map(int, body[-1::-2])) + sum(map(int, body[-2::-2]))
    return (10 - total % 10) % 10 == int(digits[-1])


def is_card_number(digits: str) -> bool:
    """True if the all-digit string has a real issuer prefix and length and passes Luhn."""
    return len(digits) in _LENGTHS_BY_PREFIX.get(digits[:4], _NONE) and luhn_ok(digits)


# The seconds and their fraction that start a run after "HH:MM:" (a log line's
# "09:37:59.853 54699 18158": then its pid and thread id).
_SECONDS = re.compile(r"[0-5][0-9][.,][0-9]{1,9} +")
_GROUP = re.compile(r"[0-9]+")
# A run that is wholly a list of amounts with cents (``590.14 304.52 346.08``) or of
# coordinates (``66.56689 46.7625``), apart by spaces (or a minus sign): figures, not a
# card's groups, which are not written with two digits after a dot, nor with four to
# eight after one to three.  Joined, one such list in three held a card by chance.
_AMOUNT = r"[0-9]{1,7}\.[0-9]{2}"
_DEGREES = r"[0-9]{1,3}\.[0-9]{4,8}"
_FIGURES = re.compile(rf"{_AMOUNT}(?: {{1,3}}-?{_AMOUNT})+|{_DEGREES}(?: {{1,3}}-?{_DEGREES})+")


def _excluded(digits: str, grouped: bool) -> bool:
    """Exclusion hook: a compact 13- or 14-digit number that is a valid EAN-13 / GTIN-14.

    Barcodes are printed compact; 13-digit Visa numbers are no longer issued and
    14-digit Diners numbers are printed 4-6-4.  A number that passes both Luhn and
    the GS1 check (about 1 in 100) is taken as a barcode when compact, as a card
    when grouped.
    """
    return not grouped and len(digits) in (13, 14) and _gs1_ok(digits)


class CreditCardDetector(Detector):
    """12-19 digits, compact or grouped, with an issuer prefix and length and Luhn.

    What counts as one candidate: a run of digit groups joined by separators
    (:data:`~zoneapp.dlp._base.SEPARATORS`) is cut only between whole groups, and
    any slice of consecutive groups with 12-19 digits in all is a candidate, in
    any grouping ("4111 1111 1111 1111", 4-6-5, 4-4-4-2, 5-5-5-1, one digit at a
    time).  So a CVV, expiry or order number next to a card does not hide it,
    while one group of more than 19 digits is never split into windows.  Letters and
    underscores around a run do not matter (``REF4111111111111111X``).
    """

    name = "CREDIT_CARD"
    # A group start (not after a digit) with an issuer's first digit, then as many
    # digits as the shortest card needs (UATP: 15), separator runs between them.
    prefilters: ClassVar[dict[str, str]] = {
        "digits": f"{LEFT}(?:1{_DIGIT}{{14}}|[2-689]{_DIGIT}{{11}})"
    }

    def find(self, text: str, path: str, modes: Collection[str]) -> bool:
        return holds_card(text)


def holds_card(text: str) -> bool:
    """True if a normalized text holds a card number candidate that validates."""
    if text.isdigit() and text.isascii():
        # One compact group (a card token, a card field): only the whole of it is a
        # candidate, as _groups_hold_card would find after the run split.
        return (
            len(text) in _LENGTHS_BY_PREFIX.get(text[:4], _NONE)
            and luhn_ok(text)
            and not _excluded(text, grouped=False)
        )
    for start, run in written_runs(text):
        if clock_before(text, start) and (seconds := _SECONDS.match(run)):
            run = run[seconds.end() :]  # a clock time's seconds are no card digits
        groups = _GROUP.findall(run)
        if (
            sum(map(len, groups)) >= MIN_LENGTH
            and not _FIGURES.fullmatch(run)
            and _groups_hold_card(groups)
        ):
            return True
    return False


def groups_hold_card(groups: list[str]) -> bool:
    """:func:`holds_card` on the digit groups of one run, for a caller that knows the runs
    (a card token's layout is fixed while its digits change)."""
    return sum(map(len, groups)) >= MIN_LENGTH and _groups_hold_card(groups)


def _groups_hold_card(groups: list[str]) -> bool:
    """Any slice of consecutive whole groups that is a card number.

    Linear in the number of groups: at each group start only the lengths valid for
    the 4-digit prefix there are tried, and only if they end on a group boundary.
    """
    flat = "".join(groups)
    first_end: dict[int, int] = {}  # group start -> that group's end
    at = 0
    for group in groups:
        first_end[at] = at + len(group)
        at += len(group)
    bounds = set(first_end.values())
    luhn = _WindowLuhn(flat) if len(groups) > 64 else None
    for start, own_end in first_end.items():
        for length in _LENGTHS_BY_PREFIX.get(flat[start : start + 4], _NONE):
            end = start + length
            if end in bounds and length <= MAX_LENGTH:
                ok = luhn.ok(start, end) if luhn is not None else luhn_ok(flat[start:end])
                if ok and not _excluded(flat[start:end], grouped=end != own_end):
                    return True
    return False


class _WindowLuhn:
    """Luhn of any window of one long digit string in O(1), after O(n) prefix sums:
    a run of thousands of one-digit groups must not cost a Luhn pass per slice."""

    def __init__(self, digits: str) -> None:
        # plain[k][i] / doubled[k][i]: sums over positions < i with parity k.
        plain = ([0], [0])
        doubled = ([0], [0])
        for i, ch in enumerate(digits):
            d = ord(ch) - 48
            k = i & 1
            plain[k].append(plain[k][-1] + d)
            doubled[k].append(doubled[k][-1] + (2 * d - 9 if d > 4 else 2 * d))
            plain[1 - k].append(plain[1 - k][-1])
            doubled[1 - k].append(doubled[1 - k][-1])
        self.plain = plain
        self.doubled = doubled

    def ok(self, start: int, end: int) -> bool:
        k = (end - 1) & 1  # the check digit's parity counts plain, the other doubled
        p, d = self.plain[k], self.doubled[1 - k]
        return (p[end] - p[start] + d[end] - d[start]) % 10 == 0
