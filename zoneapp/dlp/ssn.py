"""US_SSN: US Social Security numbers."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import ClassVar

from zoneapp.dlp._base import (
    LEFT,
    RIGHT,
    SEPARATORS,
    Detector,
    digit_runs,
    path_matches,
)

__all__ = ["SSN_CONTEXT", "SsnDetector", "ssn_ok"]

#: Words that make 9 digits in any grouping an SSN when they appear in the same text,
#: an object key or the field path (camelCase split first: ``employeeSSN``).  Matched
#: as whole words, so "classname" or "businessname" do not count as "ssn".  Up to two
#: characters between the halves of "soc sec" (``Soc. Sec. No.``).
#: Parts of a field name written as one lower-case word (``socialsecuritynumber``,
#: ``empssn``, ``ssnid``): "ssn" only at an end of the name, so ``businessnumber`` and
#: ``classname`` do not count.
SSN_COMPOUND = re.compile(
    r"socialsec|socsec|(?:^|[^a-z])ssn|(?<!i)ssn(?:$|[^a-z])|ssn(?:id|no|num)", re.IGNORECASE
)
SSN_CONTEXT = re.compile(
    r"(?<![a-z])(?:ssns?|s\.s\.n\.?|ss ?#|ss ?(?:no|num|number)"
    r"|soc(?:ial)?[ ._-]{0,2}sec(?:urity)?|social(?= ?[:#])|tins?|tax ?(?:payer ?)?id)(?![a-z])",
    re.IGNORECASE,
)


def ssn_ok(digits: str) -> bool:
    """SSA rules: never issued are area 000, 666 and 900-999, group 00, serial 0000.

    Decision: the numbers published in advertising (078-05-1120 from the Woolworth
    wallet card, 219-09-9999) are *not* excluded.  They are the most common
    planted test values, real people used them, and blocking one costs a
    quarantined record, while letting one pass teaches producers that SSN-shaped
    values cross.
    """
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")


class SsnDetector(Detector):
    """``AAA-GG-SSSS`` with dash, space, dot, slash or underscore groups, anywhere;
    with an SSN context word (see :data:`SSN_CONTEXT`), also 9 digits in any other
    grouping (``536 904 399``, ``5369-04399``) or none.

    Candidates are slices of consecutive whole groups of a run
    (:func:`~zoneapp.dlp._base.digit_runs`): without context, three groups of 3, 2
    and 4 digits; with it, any slice of exactly 9 digits.  Other groupings and bare
    9-digit numbers are too common (ids, routing numbers, amounts, phone number
    pieces) to flag without context, and once a context word says "SSN" the grouping
    is the writer's choice, so it must not decide.
    """

    name = "US_SSN"
    context = SSN_CONTEXT
    context_word = "ssn"
    compound = SSN_COMPOUND
    prefilters: ClassVar[dict[str, str]] = {
        "grouped": f"{LEFT}[0-9]{{3}}{SEPARATORS}+[0-9]{{2}}{SEPARATORS}+[0-9]{{4}}{RIGHT}",
        # 9 digits in whole groups (one or more); find() wants a context word.
        "context": f"{LEFT}[0-9](?:{SEPARATORS}*[0-9]){{8}}{RIGHT}",
        # A whole text of 7 or 8 digits: an SSN stored as a number lost its leading
        # zeros (078051120 is 78051120); find() wants the context.
        "padded": "^[0-9]{7,8}$",
    }

    def find(self, text: str, path: str, modes: Collection[str]) -> bool:
        context: bool | None = None
        if 7 <= len(text) <= 8 and text.isdigit():
            padded = text.zfill(9)
            return ssn_ok(padded) and path_matches(SSN_CONTEXT, path, SSN_COMPOUND)
        for groups in digit_runs(text):
            sizes = [len(g) for g in groups]
            for i in range(len(groups) - 2):
                if sizes[i : i + 3] == [3, 2, 4] and ssn_ok("".join(groups[i : i + 3])):
                    return True
            for i in range(len(groups)):  # the slice of 9 digits starting at group i
                total, j = 0, i
                while total < 9 and j < len(groups):
                    total += sizes[j]
                    j += 1
                if total == 9 and ssn_ok("".join(groups[i:j])):
                    if context is None:
                        context = self.in_context(text, path)
                    if context:
                        return True
        return False
