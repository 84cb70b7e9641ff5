"""PHONE: telephone numbers, validated with libphonenumber (``phonenumbers``).

What counts as a candidate (a run of digits grouped by spaces, dots, hyphens,
slashes, underscores or parentheses, :data:`_RUN`), and which check it must pass:

1. International, ``+`` or ``00`` first (``+972-50-123-4567``, ``0044 20 7946 0958``,
   ``+44 (0) 20 7946 0958``): a *possible* number for its country code (length
   rules).  The ``+`` is strong evidence, and this is Presidio's leniency.
2. The North American layout ``(NXX) NXX-XXXX``, ``NXX-NXX-XXXX``, ``1-NXX-...``
   with separators (``415_555_2671`` too): always a phone number, including the
   fictional 555-01XX range.
3. National formats of the policy's regions (``dlp.phone_regions``, default
   :data:`DEFAULT_REGIONS`): two or more groups and a *valid* number
   (libphonenumber's per-region ranges) in one of them, such as ``03-1234-5678``
   (JP), ``09-7625400`` (IL), ``010-1234-5678`` or ``138 0013 8000`` (CN).  With
   the trunk prefix 0, 9 to 12 digits; without it, 10 to 12 digits and not shaped
   like a thousands-grouped amount or an SSN (see ``_grouped_national``).
   A run longer than any number may be several such numbers with their trunk
   prefix one after the other (``052 5552606 074-7111234``): all of it, cut on
   whole groups (``_numbers_in_a_row``).
4. With a phone context word (:data:`PHONE_CONTEXT`) in the text or the field path
   (unless a word right before the run names it an id: ``order 48213377``), a bare
   run of 7 to 15 digits, or a grouped one of 7 to 15, that is a possible number
   internationally or in one of the regions.  A WhatsApp link's digits
   (``wa.me/447700900123``) are an international number without its ``+``.

Not phones (exclusion hooks, checked before libphonenumber): four groups of four
digits (a card's layout, such as a card token ``0030 9703 2292 1111``); a run without ``+``
glued to a letter on either side (``a38f-557203-3018``: part of a UUID, a SKU, a hex
digest or a token, ``00`` runs such as a traceparent's ``00-4968e...`` too; an
extension such as ``x123`` after it is fine), the digit groups of a canonical UUID,
the seconds of a clock time after their ``:`` (``19:05:00.635017-08:00``), a US
ZIP+4 code's shape (``02540-4119``) without a context word, amounts
grouped in thousands with cents (``518 219 135.57``), runs that start
with a calendar date (``2026-11-23 14``, ``23.11.2026``, ``03/20/2035``,
``23_11_2026``), dotted quads (IPv4), valid ISBN-10s, and (unless in the North
American layout) runs that start with a year (``2024-123456``) or have four digits
after a dot (coordinates, build versions).  Bare digit runs without context are ids
far more often than phone numbers, so they need rule 4.  An extension after the
number (``x123``, ``ext. 123``) does not stop the number from being found.

libphonenumber refuses ``_``, so a run reaches it with underscores (and slashes, so
that spellings share a cache entry) as spaces: :func:`_parseable`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from functools import lru_cache
from typing import ClassVar

import phonenumbers

from zoneapp.dlp._base import LEFT, RIGHT, Detector, clock_before

__all__ = ["DEFAULT_REGIONS", "PHONE_CONTEXT", "PhoneDetector"]

#: Regions whose national formats count without context (rule 3): North America,
#: the largest European markets, Israel, India, Japan, China, Brazil and Australia.
DEFAULT_REGIONS: tuple[str, ...] = (
    "US",
    "CA",
    "GB",
    "DE",
    "FR",
    "ES",
    "IT",
    "NL",
    "IL",
    "IN",
    "JP",
    "CN",
    "BR",
    "AU",
)

PHONE_CONTEXT = re.compile(
    # "Mobile Safari" of a user agent is a product name, and its build number
    # ("Build/AP2A.230228.034") no phone.
    r"(?<![a-z])(?:phone|telephone|tel|mobile(?! ?safari)|cell|cellphone|fax|msisdn|"
    r"whatsapp|sms|mob|tlf|telefon|telefono|telefone|handy|contact|telecom|"
    # Portuguese, Spanish, Italian (accents come off in the normalized view).
    r"celular|cellulare|contato|contatto|movil)(?:e?s)?(?![a-z])"
    # "ph" only apart from digits too: random base64 has "3PH0" and "_9pH4".
    r"|(?<![a-z0-9])ph(?![a-z0-9])",
    re.IGNORECASE,
)
#: Parts of a field name written as one lower-case word (``homephone``,
#: ``phonenumber``, ``mobileno``).
PHONE_COMPOUND = re.compile(
    r"phone|telecom|msisdn|whatsapp|mobile(?:no|num|number)|fax(?:no|num|number)",
    re.IGNORECASE,
)
# Seconds of a clock time after its ":" (with a fraction and a zone's hours):
# ``2020-04-11T19:05:00.635017-08:00``.
# (A form body's "+" decoded is a space.)
_SECONDS = re.compile(r"[0-5][0-9](?:[.,][0-9]{1,9})?(?:[ +-][0-9]{2})?")
# The seconds and their fraction at the start of a longer run, after "HH:MM:"; the
# minutes at the start of one after "HH:".
_SECONDS_FIRST = re.compile(r"[0-5][0-9][.,][0-9]{1,9}(?= )")
_MINUTES_FIRST = re.compile(r"[0-5][0-9] +(?=[0-9(])")
_HOURS = re.compile(r"(?<![0-9:])[0-9]{1,2}:$")
# An amount grouped in thousands with cents: ``518 219 135.57``, ``1.234.567,89``.
# A UUID in its canonical form: its digit groups are an id's, never a phone's.
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_AMOUNT = re.compile(r"[0-9]{1,3}(?:[ .,'][0-9]{3})+[.,][0-9]{2}")

_RUN = re.compile(r"(?:\(?\+|\()?[0-9](?:[ ./_()-]{0,8}[0-9])*")
_GROUP = re.compile(r"[0-9]+")
_WORD = re.compile(r"[^\W\d_]")  # a letter
_NOT_GLUED = "(?:^|[^0-9A-Za-z\\n])"
_EXTENSION = re.compile(r"(?:x|ext\.?) ?[0-9]", re.IGNORECASE)
_NANP = re.compile(
    r"(?:1[ ._-]{1,2})?(?:\([0-9]{3}\)[ _]?|[0-9]{3}[ ._-]{1,2})[0-9]{3}[ ._-]{1,2}[0-9]{4}"
)
_DATE = re.compile(
    r"(?:(?:19|20)[0-9]{2}[./ _-][01]?[0-9][./ _-][0-3]?[0-9]"  # 2026-11-23
    r"|[0-3]?[0-9][./ _-][0-3]?[0-9][./ _-](?:19|20)[0-9]{2})"  # 23.11.2026, 11/23/2026
    r"(?![0-9])"
)
# The North American layout on whole digit groups of a run (not the tail of one).
_NANP_GROUPS = re.compile(rf"(?<![0-9])(?:{_NANP.pattern})(?![0-9])")
_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_CARD_LAYOUT = re.compile(r"\+?[0-9]{4}(?:[ ./_-]{1,8}[0-9]{4}){3}")
# A US ZIP+4 code (``02540-4119``): nine digits with a leading 0 are a valid national
# number in several regions, so without a context word this shape is a ZIP code.
_ZIP4 = re.compile(r"[0-9]{5}-[0-9]{4}")
_YEAR_FIRST = re.compile(r"(?:19|20)[0-9]{2}[ ./_-]")
_DECIMAL = re.compile(r"\.[0-9]{4}")


def _parseable(run: str) -> str:
    """``run`` with the separators libphonenumber refuses (``_``) or needs no
    separate cache entry for (``/``) as spaces: here they group digits like one."""
    return run.replace("_", " ").replace("/", " ")


def _glued_id(text: str, start: int) -> bool:
    """The run at ``start`` continues an identifier: a letter, or a letter or digit and
    an underscore, right before it (``dc005799_10``, ``pay_25545524_10``)."""
    before = text[start - 1]
    return before.isalpha() or (before == "_" and start > 1 and text[start - 2].isalnum())


# A word right before a number that names it something else: "order 48213377" in a
# text that says "contact" elsewhere is an order number.
_ID_BEFORE = re.compile(
    r"(?<![a-z])(?:order|invoice|ticket|case|booking|reservation|confirmation|tracking"
    r"|transaction|account|acct|ref|reference|item|serial|po|(?<!caller )id)s?"
    r"(?: ?(?:no|nr|num|number|#))?[ .:#=-]{0,3}$",
    re.IGNORECASE,
)


def _named_id(text: str, start: int) -> bool:
    """The run at ``start`` follows a word that makes it an id (:data:`_ID_BEFORE`):
    a phone context word elsewhere in the text does not make it a phone."""
    return _ID_BEFORE.search(text, max(0, start - 32), start) is not None


def _hour_before(text: str, start: int) -> bool:
    """An hour right before ``start`` (``14:``): the run starts with minutes."""
    return _HOURS.search(text, max(0, start - 3), start) is not None


def _isbn10(groups: Sequence[str]) -> bool:
    digits = "".join(groups)
    if len(groups) != 4 or len(digits) != 10:
        return False
    return sum((10 - i) * int(d) for i, d in enumerate(digits)) % 11 == 0


class PhoneDetector(Detector):
    """International, North American and national phone numbers (module docstring)."""

    name = "PHONE"
    context = PHONE_CONTEXT
    context_word = "phone"
    compound = PHONE_COMPOUND
    # Supersets of find()'s rules that Hyperscan runs as small DFAs.
    prefilters: ClassVar[dict[str, str]] = {
        # Rule 1: + or 00, then at least 7 digits (so 6 more digit-or-separator chars).
        "intl": rf"(?:\+[ (]{{0,2}}|{LEFT}00)[0-9][0-9 ./_()-]{{6}}",
        # Rules 2 and 3: a run not glued to a letter or digit on its left, 9+ digits
        # and a separator: the first separator run after the i-th digit, then at
        # least 9 - i more digits.
        "grouped": "|".join(
            [
                *(
                    rf"{_NOT_GLUED}[0-9]{{{i}}}[ ./_()-]+[0-9]"
                    + (rf"(?:[ ./_()-]*[0-9]){{{8 - i}}}" if i < 8 else "")
                    for i in range(1, 9)
                ),
                rf"{_NOT_GLUED}[0-9]{{9}}[ ./_()-]+[0-9]",
            ]
        ),
        # Rule 4: 7 to 15 bare digits; find() looks for a context word.
        "bare": rf"{LEFT}[0-9]{{7,15}}{RIGHT}",
        # Rule 4 for a short number in two groups, as local numbers are written
        # (``555-1234``, ``0800 1234``): too few digits for "grouped".
        "local": rf"{LEFT}[0-9]{{3,4}}[ ./_-]{{1,2}}[0-9]{{4}}{RIGHT}",
    }

    def __init__(self, regions: Sequence[str] = DEFAULT_REGIONS) -> None:
        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region(s): {', '.join(unknown)}")
        self.regions = tuple(regions)

    def find(self, text: str, path: str, modes: Collection[str]) -> bool:
        if _CARD_LAYOUT.fullmatch(text):
            return False  # the whole text is one run in a card's layout (below)
        context: list[bool] = []

        def near() -> bool:
            """A context word in the text or the path, looked for once per text."""
            if not context:
                context.append(self.in_context(text, path))
            return context[0]

        uuids = [u.span() for u in _UUID.finditer(text)] if len(text) >= 36 else ()
        for m in _RUN.finditer(text):
            run = m.group()
            if _CARD_LAYOUT.fullmatch(run):
                continue  # four groups of four digits: a card's layout (CREDIT_CARD's job)
            start, end = m.span()
            if uuids and any(a <= start and end <= b for a, b in uuids):
                continue  # digit groups of a UUID
            if "_" in run and start and _glued_id(text, start):
                continue  # underscores inside an identifier (pay_00543593_10), not a layout
            if run[0] == "+" or run[:2] == "(+":
                if self._international(run):
                    return True
                continue
            glued = (bool(_WORD.match(text, start - 1)) if start else False) or bool(
                _WORD.match(text, end) and not _EXTENSION.match(text, end)
            )
            if glued:
                # Part of an identifier (a UUID, a SKU, hex, a traceparent's "00-4968e…"),
                # unless a context word says phone (phone0049301234567).
                if run[:2] == "00" and run[2:3] != "0" and near() and self._international(run):
                    return True
                continue
            if start and text[start - 1] == ":":
                if _SECONDS.fullmatch(run):
                    continue  # the seconds of a clock time
                seconds = _SECONDS_FIRST.match(run) if clock_before(text, start) else None
                if seconds is not None:
                    # A log line's seconds, then its pid and thread ids
                    # ("19:31:20.307 89985 18158"): what follows them is a number
                    # after a clock time, a phone only with a context word.
                    if not near():
                        continue
                    rest = run[seconds.end() :].lstrip(" ./_()-")
                    if self._run_is_phone(text, path, rest, start + len(run) - len(rest), near):
                        return True
                    continue
                minutes = _MINUTES_FIRST.match(run) if _hour_before(text, start) else None
                if minutes is not None:
                    # "at 14:30 01 23 45 67 89": the number may start after the minutes
                    # (and the run is tried whole as well, below).
                    rest = run[minutes.end() :]
                    if self._run_is_phone(text, path, rest, start + minutes.end(), near):
                        return True
            if self._run_is_phone(text, path, run, start, near):
                return True
        return False

    def _run_is_phone(
        self, text: str, path: str, run: str, start: int, near: Callable[[], bool]
    ) -> bool:
        """Rules 1 (``00``) to 4 on one run of ``text`` at ``start`` that is not glued to
        an identifier; ``near`` says whether a context word is in the text or path."""
        if run[:2] == "00" and run[2:3] != "0":
            return self._international(run)
        if run.isdigit():
            # One group, no separators: no date, layout or national format (rules
            # 2 and 3 need groups), so only rule 4, with its context word.
            if text[max(0, start - 6) : start].lower() == "wa.me/":
                # A WhatsApp link's number is international, without its "+".
                return self._international("+" + run)
            return (
                7 <= len(run) <= 15
                and near()
                and not _named_id(text, start)
                and (_check("+" + run, None, False) or self._national(run, False))
            )
        date = _DATE.match(run)
        if date is not None:  # a date (and maybe a time) first: look at what follows
            run = run[date.end() :].lstrip(" ./_()-")
        context_here = near() and not _named_id(text, start)
        if _ZIP4.fullmatch(run) and not context_here:
            return False
        return self._grouped(run, context_here) or self._numbers_in_a_row(run)

    def _numbers_in_a_row(self, run: str) -> bool:
        """A run longer than any number that is wholly two or more national numbers with
        their trunk prefix written one after the other (``052 5552606 074-7111234``),
        each on whole digit groups.  All of it must be such numbers: a list or table of
        figures, cut anywhere, has some part that is a valid number somewhere far too
        often (the North American layout is found inside a run already)."""
        spans = [m.span() for m in _GROUP.finditer(run)]
        if len(spans) > self.MAX_SLICED_GROUPS or sum(b - a for a, b in spans) <= 15:
            return False
        # ends[i]: the groups from i on are numbers in a row (ends[len] = nothing left).
        ends = [False] * len(spans) + [True]
        for i in range(len(spans) - 1, -1, -1):
            size = 0
            for j in range(i, len(spans)):
                size += spans[j][1] - spans[j][0]
                if size > 15:
                    break
                if ends[j + 1] and size >= 9 and j > i and run[spans[i][0]] == "0":
                    part = run[spans[i][0] : spans[j][1]]
                    if self._trunk_national(part):
                        ends[i] = True
                        break
        return ends[0]

    #: Runs of more groups are not cut into numbers: each cut costs libphonenumber
    #: calls per region, and a long run of digit groups is a table or a dump.
    MAX_SLICED_GROUPS = 12

    def _grouped(self, run: str, near: bool) -> bool:
        """Rules 2 to 4 on a run of digit groups (a date in front already cut off);
        ``near``: a context word is in the text or the path."""
        groups = _GROUP.findall(run)
        digits = "".join(groups)
        if len(digits) < 7 or _QUAD.fullmatch(run) or _isbn10(groups):
            return False
        if _NANP_GROUPS.search(run):
            return True
        if _YEAR_FIRST.match(run) or _DECIMAL.search(run) or _AMOUNT.fullmatch(run):
            return False  # an invoice or serial number, coordinates, a build version
        if self._grouped_national(run, groups, digits):
            return True
        return (
            len(digits) <= 15
            and near
            and (_check("+" + digits, None, False) or self._national(run, False))
        )

    def _international(self, run: str) -> bool:
        """Rule 1 on the run, then on shorter whole-group prefixes (a trailing extension)."""
        text = _parseable("+" + run[2:] if run[:2] == "00" else run)
        if _check(text, None, False):
            return True
        groups = _GROUP.findall(text)
        digits = ""
        for group in groups[:-1]:
            digits += group
            if len(digits) > 17:  # "00" + 15 digits of E.164 at most
                break
            if len(digits) >= 7 and _check("+" + digits.removeprefix("00"), None, False):
                return True
        return False

    def _trunk_national(self, run: str) -> bool:
        """Rule 3 for a run that starts with the trunk prefix 0, with rule 3's exclusions."""
        groups = _GROUP.findall(run)
        if _QUAD.fullmatch(run) or _isbn10(groups) or _DECIMAL.search(run):
            return False
        return not _AMOUNT.fullmatch(run) and self._grouped_national(run, groups, "".join(groups))

    def _grouped_national(self, run: str, groups: Sequence[str], digits: str) -> bool:
        """Rule 3: a valid national number, written in groups.

        With the trunk prefix ``0``: 9 to 12 digits.  Without it: 10 to 12 digits and
        not shaped like a thousands-grouped amount (``912 345 678``) or an SSN
        (``078-05-1123``); 9-digit national numbers without a trunk prefix (Spain,
        Italy) need ``+``, ``00`` or a context word; and without it, at most five groups,
        at most one of one digit after the first (Brazil's mobile ``11 9 8765-4321``;
        ``40-17-48-3-45-7`` is a list of numbers).
        """
        sizes = [len(g) for g in groups]
        if len(groups) < 2 or sizes == [3, 2, 4]:
            return False
        if digits[0] == "0":
            return 9 <= len(digits) <= 12 and self._national(run, True)
        if len(digits) < 10 or len(digits) > 12:
            return False
        if sizes[0] <= 3 and all(size == 3 for size in sizes[1:]):
            return False
        if len(groups) > 5 or sizes[1:].count(1) > 1:
            return False  # a list of small numbers (a lottery draw, a score), not a layout
        return self._national(run, True)

    def _national(self, run: str, valid: bool) -> bool:
        text = _parseable(run)
        return any(_check(text, region, valid) for region in self.regions)


@lru_cache(maxsize=8192)
def _check(text: str, region: str | None, valid: bool) -> bool:
    """libphonenumber's verdict, cached: parsing costs about 20 us and ids repeat."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return False
    if valid:
        return bool(phonenumbers.is_valid_number(number))
    return bool(phonenumbers.is_possible_number(number))
