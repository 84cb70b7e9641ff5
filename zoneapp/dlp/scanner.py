"""The scanner: runs every detector over the text fields of one record."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from zoneapp.dlp._base import CustomDetector, Detector, Finding
from zoneapp.dlp.credit_card import CreditCardDetector
from zoneapp.dlp.email_address import EmailDetector
from zoneapp.dlp.iban import IbanDetector
from zoneapp.dlp.phone import PhoneDetector
from zoneapp.dlp.ssn import SsnDetector

__all__ = ["BUILTIN_DETECTORS", "Scanner", "build_scanner"]

BUILTIN_DETECTORS: Mapping[str, type[Detector]] = {
    cls.name: cls
    for cls in (CreditCardDetector, SsnDetector, IbanDetector, EmailDetector, PhoneDetector)
}

# Texts are joined with a newline, which no built-in pattern can match, and every
# built-in boundary lookaround treats it like the start/end of a text.
_JOIN = "\n"

# (item index, offset in its text, path, detector name): sorts into input order
_Hit = tuple[int, int, str, str]


@dataclass(frozen=True, slots=True)
class _Program:
    """One compiled regex and the detectors it finds candidates for, in order.

    ``singles[k]`` is detector k's own regex: at a position where the combined
    regex reports detector i, detectors after i may match there too (the
    alternation only reports the first) and are retried with ``match``.
    """

    regex: re.Pattern[str]
    detectors: tuple[Detector, ...]
    singles: tuple[re.Pattern[str], ...]


def _program(detectors: Sequence[Detector]) -> _Program:
    singles = tuple(re.compile(d.pattern) for d in detectors)
    if len(detectors) == 1:
        return _Program(singles[0], tuple(detectors), singles)
    # An empty marker group after each alternative tells which one matched
    # (m.lastindex); patterns have no groups of their own (checked by the caller).
    combined = "|".join(f"(?:{d.pattern})(?P<dlp{k}>)" for k, d in enumerate(detectors))
    return _Program(re.compile(combined), tuple(detectors), singles)


def _is_groupless(detector: Detector) -> bool:
    try:
        return re.compile(detector.pattern).groups == 0
    except re.error as exc:
        raise ValueError(f"DLP detector {detector.name}: regex does not compile: {exc}") from None


class Scanner:
    """Finds sensitive values in (path, text) pairs, reporting only (path, detector).

    Built-in style detectors run over all texts joined into one string in a single
    regex pass per program; custom (policy) detectors run over each text on its
    own, because joining would change what ``^``, ``$``, ``\\s`` or ``[^x]`` in a
    policy author's regex match.
    """

    def __init__(self, detectors: Sequence[Detector]) -> None:
        names = [d.name for d in detectors]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"DLP detectors listed more than once: {', '.join(duplicates)}")
        self.detectors: tuple[Detector, ...] = tuple(detectors)

        self._per_text: tuple[tuple[Detector, re.Pattern[str]], ...] = tuple(
            (d, d.regex) for d in detectors if isinstance(d, CustomDetector)
        )
        joined = [d for d in detectors if not isinstance(d, CustomDetector)]

        # Detectors sharing a gate go into one alternation (re factors the shared
        # prefix out, keeping the first-character fast path); the rest run alone.
        gated: dict[str, list[Detector]] = {}
        programs: list[_Program] = []
        for det in joined:
            if det.gate is not None and _is_groupless(det):
                gated.setdefault(det.gate, []).append(det)
            else:
                programs.append(_program([det]))
        programs[:0] = [_program(group) for group in gated.values()]
        self._programs: tuple[_Program, ...] = tuple(programs)
        self._per_text_any = self._combine_per_text()

    def _combine_per_text(self) -> re.Pattern[str] | None:
        """One regex that says whether a text can hit any custom detector at all.

        Most texts hit none, so one search per text instead of one per detector.
        Skipped when a pattern has groups (backreference numbers would shift) or
        inline global flags (which cannot be combined).
        """
        if len(self._per_text) < 2 or any(rx.groups for _, rx in self._per_text):
            return None
        try:
            return re.compile("|".join(f"(?:{d.pattern})" for d, _ in self._per_text))
        except re.error:
            return None

    def scan(self, items: Iterable[tuple[str, str]]) -> list[Finding]:
        """items are (path, text) pairs; returns every (path, detector) hit, deduplicated,
        in input order."""
        pairs = items if isinstance(items, list | tuple) else list(items)
        if not pairs:
            return []
        paths = [path for path, _ in pairs]
        texts = [text for _, text in pairs]
        seen: set[tuple[str, str]] = set()
        hits: list[_Hit] = []
        if self._programs:
            self._scan_joined(paths, texts, seen, hits)
        if self._per_text:
            self._scan_each(paths, texts, seen, hits)
        if not hits:
            return []
        hits.sort()
        return [Finding(path, name) for _, _, path, name in hits]

    def scan_text(self, text: str) -> list[str]:
        """Detector names that hit in one text (for field names / paths)."""
        return [finding.detector for finding in self.scan((("", text),))]

    def _scan_joined(
        self,
        paths: list[str],
        texts: list[str],
        seen: set[tuple[str, str]],
        hits: list[_Hit],
    ) -> None:
        joined = _JOIN.join(texts)
        starts: list[int] | None = None
        for program in self._programs:
            search = program.regex.search
            multi = len(program.detectors) > 1
            m = search(joined)
            while m is not None:
                pos = m.start()
                if starts is None:
                    starts = [0, *accumulate(len(t) + len(_JOIN) for t in texts[:-1])]
                index = bisect_right(starts, pos) - 1
                first = m.lastindex - 1 if multi and m.lastindex else 0
                self._check_position(
                    program, first, m, joined, pos, index, starts[index], paths, seen, hits
                )
                # Resume one character on, not at m.end(): a candidate that failed
                # validation may overlap a valid one that starts inside it.
                m = search(joined, pos + 1)

    @staticmethod
    def _check_position(
        program: _Program,
        first: int,
        m: re.Match[str],
        joined: str,
        pos: int,
        index: int,
        text_start: int,
        paths: list[str],
        seen: set[tuple[str, str]],
        hits: list[_Hit],
    ) -> None:
        """Validate detector ``first`` (matched by the alternation) and any later
        detector that also matches at ``pos``."""
        path = paths[index]
        for k in range(first, len(program.detectors)):
            det = program.detectors[k]
            if (path, det.name) in seen:
                continue
            match = m if k == first else program.singles[k].match(joined, pos)
            if match is None:
                continue
            candidate = joined[pos - det.lead : match.end()]
            if det.validate_in_context(candidate, path):
                seen.add((path, det.name))
                hits.append((index, pos - text_start, path, det.name))

    def _scan_each(
        self,
        paths: list[str],
        texts: list[str],
        seen: set[tuple[str, str]],
        hits: list[_Hit],
    ) -> None:
        any_custom = self._per_text_any
        for index, text in enumerate(texts):
            if any_custom is not None and any_custom.search(text) is None:
                continue
            path = paths[index]
            for det, regex in self._per_text:
                if (path, det.name) in seen:
                    continue
                m = regex.search(text)
                while m is not None:
                    if det.validate_in_context(m.group(), path):
                        seen.add((path, det.name))
                        hits.append((index, m.start(), path, det.name))
                        break
                    m = regex.search(text, m.start() + 1)


def build_scanner(builtin: Sequence[str], custom: Sequence[tuple[str, str]]) -> Scanner:
    """Raises ValueError naming the unknown detector / bad regex."""
    detectors: list[Detector] = []
    for name in builtin:
        cls = BUILTIN_DETECTORS.get(name)
        if cls is None:
            known = ", ".join(sorted(BUILTIN_DETECTORS))
            raise ValueError(f"unknown DLP detector {name!r} (built-ins: {known})")
        detectors.append(cls())
    for name, pattern in custom:
        if name in BUILTIN_DETECTORS:
            raise ValueError(f"custom DLP detector {name} clashes with the built-in of that name")
        detectors.append(CustomDetector(name, pattern))
    return Scanner(detectors)
