"""Core types of the DLP scanner: findings, detectors, and the digit-group view."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

__all__ = [
    "LEFT",
    "RIGHT",
    "SEPARATORS",
    "CustomDetector",
    "Detector",
    "Finding",
    "clock_before",
    "digit_runs",
    "has_context",
    "path_matches",
    "words_of",
    "written_runs",
]

_ENTITY_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")

# Probes for patterns that can match without consuming anything: such a detector
# would flag every record.
_EMPTY_MATCH_PROBES = ("", " ", "x", "0", "-", "\n", "a b-1_c.d@e:f/2")

#: What may group the digits of a card, SSN or IBAN in the normalized view: runs of
#: up to eight spaces, hyphens, dots, slashes or underscores, mixed or consistent
#: (eight: fixed-width columns pad with spaces).
SEPARATORS = "[ ./_-]"
#: Prefilter edges: the candidate does not touch another digit within its text.
LEFT = "(?:^|[^0-9\\n])"
RIGHT = "(?:[^0-9\\n]|$)"
_RUN = re.compile(rf"[0-9]+(?:{SEPARATORS}{{1,8}}[0-9]+)*")
_GROUP = re.compile(r"[0-9]+")


def digit_runs(text: str) -> list[list[str]]:
    """The digit groups of every separator-joined run of digits in ``text``.

    ``"ref 4111.1111 1111-1111X"`` gives ``[["4111", "1111", "1111", "1111"]]``:
    letters end a run but do not stop one from being a candidate.
    """
    return [_GROUP.findall(m.group()) for m in _RUN.finditer(text)]


_HOURS_MINUTES = re.compile(r"(?<![0-9])[0-9]{1,2}:[0-5][0-9]:$")


def clock_before(text: str, start: int) -> bool:
    """Hours and minutes right before ``start`` (``19:31:``): a run there starts with a
    clock time's seconds."""
    return _HOURS_MINUTES.search(text, max(0, start - 6), start) is not None


def written_runs(text: str) -> list[tuple[int, str]]:
    """Each run of :func:`digit_runs` as written (separators kept), with its start."""
    return [(m.start(), m.group()) for m in _RUN.finditer(text)]


# A run of letters and digits with a lower-to-upper case change inside.
_CAMEL_TOKEN = re.compile(
    r"[A-Za-z0-9]*[a-z][A-Z][A-Za-z0-9]*|[A-Za-z0-9]*[A-Z]{2}[a-z][A-Za-z0-9]*"
)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def words_of(text: str) -> str:
    """``text`` with camelCase and PascalCase words apart (``employeeSSN`` →
    ``employee SSN``, ``SSNLast`` → ``SSN Last``), so context words are found in keys."""
    return _CAMEL.sub(" ", text)


def has_context(pattern: re.Pattern[str], text: str) -> bool:
    """A context word of ``pattern`` in ``text``: as a word, or split out of camelCase
    (``homePhone``, ``mySSN``) when it is capitalized and 4 letters or more, or upper
    case and 3 or more, so random base64 (``…WPhCo…``, ``…xSsnQ…``) does not spell one.

    Context patterns are words (every match holds a letter), so a text with no cased
    character, such as a number, has none: two C calls instead of two regex passes.
    """
    if text.lower() == text.upper():
        return False
    if pattern.search(text) is not None:
        return True
    if words_of(text) == text:
        return False
    for token in _CAMEL_TOKEN.findall(text):
        # A key's word of 3 letters or more (telNo, homeTel, mySsn), in a name with no
        # digit and not longer than a name: random base64 is neither.
        short = len(token) <= 24 and not any(c.isdigit() for c in token)
        for m in pattern.finditer(words_of(token)):
            word = m.group()
            if len(word) >= 4 or (len(word) >= 3 and (word.isupper() or short)):
                return True
    return False


@lru_cache(maxsize=4096)
def path_matches(
    pattern: re.Pattern[str], path: str, compound: re.Pattern[str] | None = None
) -> bool:
    """A context word in a field path, camelCase words split (``employeeSSN``), or a
    ``compound`` part inside one of its lower-case names (``socialsecuritynumber``,
    ``homephone``); cached: a boundary sees the same few paths again and again."""
    if path.lower() == path.upper():
        return False
    if pattern.search(words_of(path)) is not None:
        return True
    return compound is not None and compound.search(path) is not None


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector hit in one field.

    Deliberately holds only where and what kind: findings end up in logs, metrics
    and error replies, so they must never carry the value, an excerpt, offsets
    into it or its length.
    """

    path: str
    detector: str


class Detector(ABC):
    """A kind of sensitive value: prefilter patterns plus a validating ``find``.

    ``prefilters`` (mode name → pattern in the engines' shared subset, see
    :mod:`zoneapp.dlp.engine`) must match every text ``find`` could accept; the
    engine runs them over all texts of a record in one pass.  ``find`` then sees
    only the texts a prefilter matched, with the modes that matched, and applies
    the checksum and exclusion hooks (Luhn, mod-97, issuer ranges, SSA rules,
    libphonenumber).  Texts are in the normalized view (:mod:`~zoneapp.dlp.normalize`).
    """

    name: ClassVar[str]
    prefilters: ClassVar[Mapping[str, str]]
    #: Modes whose prefilter matches ASCII letters case-insensitively.
    caseless: ClassVar[frozenset[str]] = frozenset()
    #: The context words ``find`` reads in ``path``, if any: when the short text of a
    #: sibling field holds one (a FHIR identifier's ``system``), the scanner asks again
    #: with :attr:`context_word` added to the path, never the sibling's text (paths
    #: are cached; record values must not be).
    context: ClassVar[re.Pattern[str] | None] = None
    context_word: ClassVar[str] = ""
    #: Parts of a field name written as one lower-case word that count as context.
    compound: ClassVar[re.Pattern[str] | None] = None

    def in_context(self, text: str, path: str) -> bool:
        """A context word of this detector in ``text`` or in ``path``."""
        words = self.context
        if words is None:
            return False
        return has_context(words, text) or path_matches(words, path, self.compound)

    @abstractmethod
    def find(self, text: str, path: str, modes: Collection[str]) -> bool:
        """True if ``text`` (at ``path``, whose names may give context) holds a value."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class CustomDetector:
    """A policy-defined entity: any non-empty match of its regex is a hit.

    Searched with Python ``re`` in each normalized text on its own (an author's
    ``^``, ``$`` or lookarounds mean what they wrote), optionally case-insensitive.
    """

    def __init__(self, name: str, pattern: str, *, ignore_case: bool = False) -> None:
        if not _ENTITY_NAME.fullmatch(name):
            raise ValueError(f"DLP detector name {name!r} must be UPPER_SNAKE_CASE")
        try:
            compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise ValueError(f"DLP detector {name}: regex does not compile: {exc}") from None
        for probe in _EMPTY_MATCH_PROBES:
            if any(m.start() == m.end() for m in compiled.finditer(probe)):
                raise ValueError(
                    f"DLP detector {name}: regex matches the empty string, "
                    "so it would flag every record"
                )
        self.name = name
        self.pattern = pattern
        self.ignore_case = ignore_case
        self.regex = compiled

    def find(self, text: str) -> bool:
        return any(m.end() > m.start() for m in self.regex.finditer(text))

    def __repr__(self) -> str:
        return f"CustomDetector({self.name})"
