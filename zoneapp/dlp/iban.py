"""IBAN: International Bank Account Numbers."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from stdnum import numdb

from zoneapp.dlp._base import SEPARATORS, Detector

__all__ = ["IBAN_FORMATS", "IbanDetector", "IbanFormat", "iban_ok"]

_BBAN_ITEM = re.compile(r"([1-9][0-9]*)!([nac])")
_BBAN_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Z0-9]"}
# Between any two characters after the check digits: a run of up to three spaces or
# hyphens ("DE89 3704 0044 0532 0130 00", "de89-3704-...").
_SEP = f"{SEPARATORS}{{0,8}}"


@dataclass(frozen=True, slots=True)
class IbanFormat:
    """Registry data for one country: total length, BBAN structure and candidate regex."""

    length: int
    bban: re.Pattern[str]
    #: The BBAN as printed: each character may follow a separator run.
    printed: str


def _load_formats() -> dict[str, IbanFormat]:
    """Country formats from python-stdnum's copy of the SWIFT IBAN registry."""
    formats: dict[str, IbanFormat] = {}
    for _size, low, high, props, _children in numdb.get("iban").prefixes:
        structure = props.get("bban")
        if low != high or not structure:
            continue
        items = _BBAN_ITEM.findall(structure)
        regex = "".join(f"{_BBAN_CLASS[kind]}{{{count}}}" for count, kind in items)
        printed = "".join(f"(?:{_SEP}{_BBAN_CLASS[kind]}){{{count}}}" for count, kind in items)
        length = 4 + sum(int(count) for count, _kind in items)
        formats[low] = IbanFormat(length=length, bban=re.compile(regex), printed=printed)
    return formats


IBAN_FORMATS: Mapping[str, IbanFormat] = MappingProxyType(_load_formats())

# ISO 7064 mod 97-10 maps A..Z to 10..35.
_LETTER_VALUES = {ord(c): str(ord(c) - ord("A") + 10) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Check digits, possibly set apart from the country code and each other ("DE 89 3704").
_CHECK = f"{SEPARATORS}{{0,3}}[0-9]{SEPARATORS}{{0,3}}[0-9]"
_START = re.compile("[A-Z]{2}" + _CHECK)
_PRINTED = {cc: re.compile(fmt.printed) for cc, fmt in IBAN_FORMATS.items()}
_SEPARATOR_CHARS = str.maketrans("", "", " ./_-")


def _any_case(code: str) -> str:
    return "".join(f"[{c}{c.lower()}]" for c in code)


def _prefilter_class(fmt: IbanFormat) -> str:
    """The characters a printed BBAN of this format is made of, separators included."""
    pattern = fmt.bban.pattern
    letters = "A-Z" if "A-Z" in pattern else ""
    digits = "0-9" if "0-9" in pattern else ""
    return f"[{letters}{digits} ./_-]"


def iban_ok(iban: str) -> bool:
    """True for a compact, upper-case IBAN with a known country, the country's
    length and BBAN structure, and a mod-97 remainder of 1."""
    fmt = IBAN_FORMATS.get(iban[:2])
    if fmt is None or len(iban) != fmt.length or not fmt.bban.fullmatch(iban, 4):
        return False
    return int((iban[4:] + iban[:4]).translate(_LETTER_VALUES)) % 97 == 1


class IbanDetector(Detector):
    """IBANs in upper or lower case, compact or grouped by separator runs.

    A candidate starts at a country code and two check digits and takes exactly the
    country's BBAN structure from the registry (each character possibly after a
    separator run), then must pass mod-97.  Because the length comes from the
    registry, letters around it do not matter: ``REFDE89370400440532013000X`` is
    found; a digit right after it does (a longer number is not cut to length).
    The BBAN's letters must be all upper or all lower case (the country code may be
    written in any case: ``De89...``), and the check digits may stand apart
    (``DE 89 3704 ...``).  Mixed case in the BBAN is what random
    base64 (every ciphertext) looks like, and with the registry's alphanumeric
    BBANs it would otherwise pass mod-97 about once in 97 look-alikes.  The
    prefilter is the same per-country structure, in each case.
    """

    name = "IBAN"
    # Country code, check digits, then as many BBAN-or-separator characters as the
    # country's BBAN has: a superset of find()'s candidates, cheap for Hyperscan.
    prefilters: ClassVar[dict[str, str]] = {
        case: "|".join(
            f"{_any_case(cc)}{_CHECK}{_prefilter_class(fmt).replace('A-Z', letters)}"
            f"{{{fmt.length - 4}}}"
            for cc, fmt in sorted(IBAN_FORMATS.items())
        )
        for case, letters in (("upper", "A-Z"), ("lower", "a-z"))
    }

    def find(self, text: str, path: str, modes: Collection[str]) -> bool:
        upper = text.translate(_ASCII_UPPER)
        for m in _START.finditer(upper):
            start = m.start()
            printed = _PRINTED.get(upper[start : start + 2])
            if printed is None:
                continue
            bban = printed.match(upper, m.end())
            if bban is None or upper[bban.end() : bban.end() + 1].isdigit():
                continue  # a longer digit string is not cut to the country's length
            written = text[m.end() : bban.end()]
            if written != written.upper() and written != written.lower():
                continue  # mixed case: random base64 (a ciphertext), not an IBAN
            head = upper[start : m.end()].translate(_SEPARATOR_CHARS)
            if iban_ok(head + bban.group().translate(_SEPARATOR_CHARS)):
                return True
        return False
