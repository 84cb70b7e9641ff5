"""IBAN: International Bank Account Numbers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from stdnum import numdb

from zoneapp.dlp._base import DIGIT_GATE, Detector

__all__ = ["IBAN_FORMATS", "IbanDetector", "IbanFormat", "iban_ok"]


@dataclass(frozen=True, slots=True)
class IbanFormat:
    """Registry data for one country: total length and BBAN structure."""

    length: int
    bban: re.Pattern[str]


_BBAN_ITEM = re.compile(r"([1-9][0-9]*)!([nac])")
_BBAN_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Z0-9]"}


def _load_formats() -> dict[str, IbanFormat]:
    """Country formats from python-stdnum's copy of the SWIFT IBAN registry."""
    formats: dict[str, IbanFormat] = {}
    for _size, low, high, props, _children in numdb.get("iban").prefixes:
        structure = props.get("bban")
        if low != high or not structure:
            continue
        items = _BBAN_ITEM.findall(structure)
        regex = "".join(f"{_BBAN_CLASS[kind]}{{{count}}}" for count, kind in items)
        length = 4 + sum(int(count) for count, _kind in items)
        formats[low] = IbanFormat(length=length, bban=re.compile(regex))
    return formats


IBAN_FORMATS: Mapping[str, IbanFormat] = MappingProxyType(_load_formats())

# ISO 7064 mod 97-10 maps A..Z to 10..35.
_LETTER_VALUES = {ord(c): str(ord(c) - ord("A") + 10) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def iban_ok(iban: str) -> bool:
    """True for a compact, upper-case IBAN with a known country, the country's
    length and BBAN structure, and a mod-97 remainder of 1."""
    fmt = IBAN_FORMATS.get(iban[:2])
    if fmt is None or len(iban) != fmt.length or not fmt.bban.fullmatch(iban, 4):
        return False
    return int((iban[4:] + iban[:4]).translate(_LETTER_VALUES)) % 97 == 1


class IbanDetector(Detector):
    """Upper-case IBANs, compact or printed in groups of four.

    The match starts at the check digits so this detector shares the digit gate;
    the country code before them is checked by a lookbehind and handed to
    ``validate`` through ``lead``.  A candidate must not touch a base64url
    character (letter, digit, ``-``, ``_``) on either side, so ciphertext strings
    do not produce IBAN look-alikes.
    """

    name = "IBAN"
    gate: ClassVar[str | None] = DIGIT_GATE
    lead: ClassVar[int] = 2
    pattern = (
        DIGIT_GATE
        + r"(?<=[A-Z]{2}..)"  # check digits after a country code ...
        + r"(?<![0-9A-Za-z_-]....)"  # ... that starts a token
        + r"(?:[A-Z0-9]{11,30}"  # compact BBAN
        + r"|(?: [A-Z0-9]{4}){2,8}(?: [A-Z0-9]{1,3})?)"  # grouped in fours
        + r"(?![0-9A-Za-z_-])"
    )

    def validate(self, candidate: str) -> bool:
        """Checks the IBAN, cutting a grouped candidate at the country's length if
        that falls between groups (text such as "... 7034 NOTE" may follow)."""
        if " " not in candidate:
            return iban_ok(candidate)
        fmt = IBAN_FORMATS.get(candidate[:2])
        if fmt is None:
            return False
        compact = ""
        for group in candidate.split(" "):
            compact += group
            if len(compact) >= fmt.length:
                return len(compact) == fmt.length and iban_ok(compact)
        return False
