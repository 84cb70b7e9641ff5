"""The scanner: runs every detector over the text fields of one record."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from types import MappingProxyType

from zoneapp.dlp._base import CustomDetector, Detector, Finding
from zoneapp.dlp.credit_card import CreditCardDetector
from zoneapp.dlp.email_address import EmailDetector
from zoneapp.dlp.iban import IbanDetector
from zoneapp.dlp.phone import PhoneDetector
from zoneapp.dlp.ssn import SsnDetector

__all__ = ["BUILTIN_DETECTORS", "Scanner", "build_scanner"]

BUILTIN_DETECTORS: Mapping[str, type[Detector]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (CreditCardDetector, SsnDetector, IbanDetector, EmailDetector, PhoneDetector)
    }
)

# Texts are joined with a newline: no built-in pattern matches one, and their
# boundary lookarounds treat it like the start or end of a text.
_JOIN = "\n"

# (text index, offset in that text, path, detector name): sorts into input order.
_Hit = tuple[int, int, str, str]


class _Batch:
    """The texts of one scan, joined into one string, with the way back to each text."""

    __slots__ = ("_starts", "joined", "paths", "texts")

    def __init__(self, paths: list[str], texts: list[str]) -> None:
        self.paths = paths
        self.texts = texts
        self.joined = _JOIN.join(texts)
        self._starts: list[int] = []  # built on the first candidate; most records have few

    def locate(self, pos: int) -> tuple[int, int]:
        """(text index, offset in that text) of a position in ``joined``."""
        if not self._starts:
            step = len(_JOIN)
            self._starts = [0, *accumulate(len(t) + step for t in self.texts[:-1])]
        index = bisect_right(self._starts, pos) - 1
        return index, pos - self._starts[index]


class _JoinedProgram:
    """One regex pass over the joined texts for one or more detectors.

    Detectors sharing a gate compile to ``gate(?:rest0(?P<dlp0>)|rest1(?P<dlp1>)|...)``:
    the empty marker group tells which alternative matched (``m.lastindex``).
    """

    def __init__(self, detectors: Sequence[Detector], gate: str = "") -> None:
        self.detectors = tuple(detectors)
        # Each detector's own regex: where the alternation reports detector i,
        # detectors after i may match too (an alternation reports only the first).
        self.singles = tuple(re.compile(d.pattern) for d in detectors)
        if len(detectors) == 1:
            self.regex = self.singles[0]
        else:
            body = "|".join(
                f"(?:{d.pattern[len(gate) :]})(?P<dlp{k}>)" for k, d in enumerate(detectors)
            )
            self.regex = re.compile(f"{gate}(?:{body})")

    def run(self, batch: _Batch, seen: set[tuple[str, str]], hits: list[_Hit]) -> None:
        joined = batch.joined
        detectors = self.detectors
        search = self.regex.search
        m = search(joined)
        while m is not None:
            pos = m.start()
            index, offset = batch.locate(pos)
            path = batch.paths[index]
            first = m.lastindex - 1 if len(detectors) > 1 and m.lastindex else 0
            for k in range(first, len(detectors)):
                det = detectors[k]
                if (path, det.name) in seen:
                    continue
                match = m if k == first else self.singles[k].match(joined, pos)
                if match is not None and det.validate_in_context(
                    joined[pos - det.lead : match.end()], path
                ):
                    seen.add((path, det.name))
                    hits.append((index, offset, path, det.name))
            # Resume one character on, not at m.end(): a candidate that failed
            # validation may overlap a valid one that starts inside it.
            m = search(joined, pos + 1)


class _PerTextDetectors:
    """Custom (policy) detectors, searched in each text on its own.

    Joining texts would change what ``^``, ``$``, ``\\s`` or ``[^x]`` in a policy
    author's regex match, so these never see the joined string.  A combined
    prefilter regex answers "can any of them hit this text?" in one search, since
    most texts hit none.
    """

    def __init__(self, detectors: Sequence[CustomDetector]) -> None:
        self.detectors = tuple(detectors)
        # Patterns with groups stay out of the prefilter (backreference numbers
        # would shift), and so do inline global flags such as (?i) (re rejects
        # them anywhere but at the very start); those are always searched.
        combinable = [d.regex.groups == 0 and _compiles(f"x|(?:{d.pattern})") for d in detectors]
        self.prefilter: re.Pattern[str] | None = None
        if sum(combinable) > 1:
            self.prefilter = re.compile(
                "|".join(
                    f"(?:{d.pattern})" for d, ok in zip(detectors, combinable, strict=True) if ok
                )
            )
        # One search over all texts of the record first: joined with newlines and in
        # MULTILINE mode, ``^``/``$``/``\b`` see text edges as before, and ``\s`` or
        # ``[^x]`` crossing a newline can only add candidates, never lose one. Only
        # absolute anchors (\A, \Z) behave differently, so those opt out.
        anchored = any(a in d.pattern for d in detectors for a in ("\\A", "\\Z", "\\z"))
        # Patterns with groups (backreferences) or inline global flags get a regex each.
        self.record_prefilters: tuple[re.Pattern[str], ...] = ()
        if not anchored:
            plain = [d.pattern for d, ok in zip(detectors, combinable, strict=True) if ok]
            own = [d.pattern for d, ok in zip(detectors, combinable, strict=True) if not ok]
            merged = ["|".join(f"(?:{p})" for p in plain)] if plain else []
            self.record_prefilters = tuple(re.compile(p, re.MULTILINE) for p in merged + own)
        # (detector, searched even when the prefilter finds nothing)
        self.entries = tuple(
            (d, not ok or self.prefilter is None)
            for d, ok in zip(detectors, combinable, strict=True)
        )

    def run(self, batch: _Batch, seen: set[tuple[str, str]], hits: list[_Hit]) -> None:
        joined = batch.joined
        if self.record_prefilters and all(p.search(joined) is None for p in self.record_prefilters):
            return
        prefilter = self.prefilter
        for index, text in enumerate(batch.texts):
            maybe = prefilter is not None and prefilter.search(text) is not None
            path = batch.paths[index]
            for det, always in self.entries:
                if not (maybe or always) or (path, det.name) in seen:
                    continue
                m = det.regex.search(text)
                while m is not None:
                    # An empty match (e.g. a bare lookahead that slipped past the
                    # constructor's probes) is never a finding.
                    if m.end() > m.start() and det.validate_in_context(m.group(), path):
                        seen.add((path, det.name))
                        hits.append((index, m.start(), path, det.name))
                        break
                    m = det.regex.search(text, m.start() + 1)


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _gate_of(detector: Detector) -> str | None:
    """The detector's gate, if its pattern can be split into gate + rest safely."""
    gate = detector.gate
    if not gate or not detector.pattern.startswith(gate):
        return None
    if detector.pattern[len(gate) : len(gate) + 1] in ("*", "+", "?", "{"):
        return None  # a quantifier would bind to the gate
    try:
        groups = re.compile(detector.pattern).groups
    except re.error as exc:
        raise ValueError(f"DLP detector {detector.name}: regex does not compile: {exc}") from None
    return gate if groups == 0 else None


class Scanner:
    """Finds sensitive values in (path, text) pairs, reporting only (path, detector).

    Built-in style detectors run over all texts of a record joined into one string,
    one regex pass per program (one program per gate, e.g. all digit-gated
    built-ins, plus one per other detector); custom detectors run per text.
    """

    def __init__(self, detectors: Sequence[Detector]) -> None:
        names = [d.name for d in detectors]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"DLP detectors listed more than once: {', '.join(duplicates)}")
        self.detectors: tuple[Detector, ...] = tuple(detectors)

        gated: dict[str, list[Detector]] = {}
        alone: list[_JoinedProgram] = []
        custom: list[CustomDetector] = []
        for det in detectors:
            if isinstance(det, CustomDetector):
                custom.append(det)
            elif (gate := _gate_of(det)) is not None:
                gated.setdefault(gate, []).append(det)
            else:
                alone.append(_JoinedProgram([det]))
        self._programs = tuple(
            [_JoinedProgram(group, gate) for gate, group in gated.items()] + alone
        )
        self._per_text = _PerTextDetectors(custom) if custom else None

    def scan(self, items: Iterable[tuple[str, str]]) -> list[Finding]:
        """items are (path, text) pairs; returns every (path, detector) hit, deduplicated,
        in input order."""
        pairs = items if isinstance(items, list | tuple) else list(items)
        if not pairs:
            return []
        batch = _Batch([path for path, _ in pairs], [text for _, text in pairs])
        seen: set[tuple[str, str]] = set()
        hits: list[_Hit] = []
        for program in self._programs:
            program.run(batch, seen, hits)
        if self._per_text is not None:
            self._per_text.run(batch, seen, hits)
        if not hits:
            return []
        hits.sort()
        return [Finding(path, name) for _, _, path, name in hits]

    def scan_text(self, text: str) -> list[str]:
        """Detector names that hit in one text (for field names / paths)."""
        return [finding.detector for finding in self.scan((("", text),))]


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
