"""The scanner: every view of every text of one record, all detectors, one engine pass.

1. Each text's normalized view (and the raw text, if it differs) is joined into one
   string; the engine (:mod:`zoneapp.dlp.engine`) runs every built-in detector's
   prefilter patterns and the decoders' triggers over it in one pass.
2. Texts a decoder trigger matched are decoded (:mod:`zoneapp.dlp.views`); the
   decoded views, normalized, get their own engine pass, layer by layer.
3. Only views a prefilter matched are validated, by the detectors' ``find``.
4. Custom (policy) detectors search the views with ``re``, behind one combined
   search of the whole record that rules most records out.

Findings name the input path and the detector, never the value or the view.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from operator import itemgetter
from types import MappingProxyType

from zoneapp.dlp._base import CustomDetector, Detector, Finding, has_context
from zoneapp.dlp.credit_card import CreditCardDetector
from zoneapp.dlp.email_address import EmailDetector
from zoneapp.dlp.engine import JOIN, Engine, Pattern, make_engine
from zoneapp.dlp.iban import IbanDetector
from zoneapp.dlp.normalize import normalize
from zoneapp.dlp.phone import DEFAULT_REGIONS, PhoneDetector
from zoneapp.dlp.ssn import SsnDetector
from zoneapp.dlp.views import DECODE_LIMIT, TRIGGERS, Budget, DecodeTooLarge, Limits, decode

__all__ = ["BUILTIN_DETECTORS", "DECODE_LIMIT", "Scanner", "build_scanner"]

BUILTIN_DETECTORS: Mapping[str, type[Detector]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (CreditCardDetector, SsnDetector, IbanDetector, EmailDetector, PhoneDetector)
    }
)


_TEXT = itemgetter(1)


class _CustomDetectors:
    """Policy detectors, searched in each view on its own.

    A combined regex over all views joined by newlines (MULTILINE, so ``^``/``$``
    see view edges) answers "can any of them hit this record?" in one search;
    patterns with groups (backreference numbers would shift), inline global flags
    or absolute anchors are searched per view always.
    """

    def __init__(self, detectors: Sequence[CustomDetector]) -> None:
        combinable = [
            d.regex.groups == 0
            and not any(a in d.pattern for a in ("\\A", "\\Z", "\\z"))
            and _compiles(f"x|(?:{d.pattern})")
            for d in detectors
        ]
        plain = [d for d, ok in zip(detectors, combinable, strict=True) if ok]
        self.always = tuple(d for d, ok in zip(detectors, combinable, strict=True) if not ok)
        self.gated = tuple(plain)
        self.gate: re.Pattern[str] | None = None
        # When every gated detector has a literal each of its matches must contain, a
        # substring test (C speed) replaces the regex gate.
        literals = [_required_literal(d) for d in plain]
        self.literals: tuple[str, ...] | None = (
            tuple(lit for lit in literals if lit is not None)
            if plain and all(lit is not None for lit in literals)
            else None
        )
        if plain:
            # (?i:...) scopes each detector's case folding to its own alternative.
            self.gate = re.compile(
                "|".join(f"(?{'i' if d.ignore_case else ''}:{d.pattern})" for d in plain),
                re.MULTILINE,
            )

    def run(
        self, joined: Sequence[str], texts: Sequence[str], origins: Sequence[int]
    ) -> Iterable[tuple[int, str]]:
        detectors = self.always
        gate = self.gate
        if self.literals is not None:
            if any(lit in j for j in joined for lit in self.literals):
                detectors = self.gated + self.always
        elif gate is not None and any(gate.search(j) for j in joined):
            detectors = self.gated + self.always
        for det in detectors:
            done: set[int] = set()
            for text, origin in zip(texts, origins, strict=True):
                if origin not in done and det.find(text):
                    done.add(origin)
                    yield origin, det.name


def _required_literal(detector: CustomDetector) -> str | None:
    """A substring of two or more characters that every match of the pattern contains.

    Read from the parsed pattern's top-level sequence (the longest run of literal
    characters outside any repeat, branch or group); None when there is none, or for
    case-insensitive patterns (case folding is not a substring test).
    """
    if detector.ignore_case:
        return None
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(detector.pattern)
    except Exception:  # a private module: without it, the regex gate is used
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    best, run = "", ""
    for op, arg in parsed:
        if op is _parser.LITERAL:
            run += chr(arg)
            best = max(best, run, key=len)
        elif op is _parser.AT:
            continue  # anchors and \b consume nothing: the literal run goes on
        else:
            run = ""
    return best if len(best) >= 2 else None


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


class _Undecodable:
    """Texts a decoder has already found nothing in, so repeated values (a tenant id,
    a content type, a merchant name) are not decoded again on every record.

    Holds Python's ``hash`` of each text, never the text: the worker keeps no record
    values here.  ``hash`` is SipHash keyed with the interpreter's random per-process
    secret, so nobody can craft a text that collides with a cached one and skips
    decoding; with ``PYTHONHASHSEED`` set the secret is known, and the cache is off.
    Bounded: emptied when it reaches :attr:`LIMIT` entries per decoder.
    """

    LIMIT = 1 << 16

    def __init__(self) -> None:
        self.enabled = os.environ.get("PYTHONHASHSEED", "random") in ("", "random")
        self._seen: dict[str, set[int]] = {}

    def known(self, decoder: str, text: str) -> bool:
        seen = self._seen.get(decoder)
        return seen is not None and hash(text) in seen

    def add(self, decoder: str, text: str) -> None:
        if not self.enabled:
            return
        seen = self._seen.setdefault(decoder, set())
        if len(seen) >= self.LIMIT:
            seen.clear()
        seen.add(hash(text))


def _level0(raw: list[str], items: list[int]) -> tuple[list[str], list[int], str]:
    """Normalized views (and differing raw ones) of the input texts ``raw`` (whose
    input indices are ``items``), the input index of each view, and their join."""
    flat = "".join(raw)
    if flat.isascii() and flat.isprintable():
        # The common case: no text has a control character (JOIN included), so each
        # is its own normalized view.  Two C passes; a regex search costs ten times that.
        return raw, items, JOIN.join(raw)
    texts: list[str] = []
    origins: list[int] = []
    for origin, text in zip(items, raw, strict=True):
        norm = normalize(text)
        texts.append(norm)
        origins.append(origin)
        if norm != text:
            raw_view = text.replace(JOIN, " ")
            if raw_view != norm:
                texts.append(raw_view)
                origins.append(origin)
    return texts, origins, JOIN.join(texts)


_Candidates = dict[tuple[int, int], set[str]]


def _add_candidate(candidates: _Candidates, key: tuple[int, int], mode: str) -> None:
    """Note that prefilter ``mode`` of a detector matched a view: (view, detector)."""
    modes = candidates.get(key)
    if modes is None:
        candidates[key] = {mode}
    else:
        modes.add(mode)


class _Siblings:
    """The short texts of the other fields of an item's object, which may name what
    the item is: ``{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "078051120"}``
    (FHIR's identifier), ``{"system": "phone", "value": "2125550123"}`` (its telecom),
    a form builder's ``{"label": "SSN", "text": "078051120"}``.
    Only for items whose name says "the value of this object" (:attr:`LEAVES`), and
    only texts of at most :attr:`SHORT` characters: a type or system, not free text."""

    SHORT = 64
    LEAVES = (
        ".value",
        ".val",
        ".v",
        ".number",
        ".id",
        ".identifier",
        ".code",
        # A form's answer next to its label: {"label": "SSN", "text": …}, {"k", "v"}.
        ".text",
        ".data",
        ".answer",
        ".content",
    )

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = pairs
        self._by_parent: dict[str, list[int]] | None = None

    @staticmethod
    def parent(path: str) -> str:
        return path[: max(path.rfind("."), path.rfind("["), 0)]

    def of(self, origin: int) -> str:
        if self._by_parent is None:
            self._by_parent = {}
            for i, (path, text) in enumerate(self.pairs):
                if len(text) <= self.SHORT:
                    self._by_parent.setdefault(self.parent(path), []).append(i)
        path = self.pairs[origin][0]
        group = self._by_parent.get(self.parent(path), ())
        return " ".join(self.pairs[i][1] for i in group if i != origin and "." in path)


class Scanner:
    """Finds sensitive values in ``(path, text)`` pairs, reporting only (path, detector)."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        custom: Sequence[CustomDetector] = (),
        *,
        engine: str = "auto",
        limits: Limits | None = None,
    ) -> None:
        names = [d.name for d in detectors] + [c.name for c in custom]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"DLP detectors listed more than once: {', '.join(duplicates)}")
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        self.custom = tuple(custom)
        self.names = tuple(names)
        self.limits = limits or Limits()
        self._order = {name: i for i, name in enumerate((*names, DECODE_LIMIT))}
        # Pattern id -> (detector index, mode), or (-1, decoder name).
        self._kinds: list[tuple[int, str]] = []
        patterns = []
        for index, det in enumerate(detectors):
            for mode, regex in det.prefilters.items():
                patterns.append(Pattern(len(self._kinds), regex, mode in det.caseless))
                self._kinds.append((index, mode))
        for decoder, regex in TRIGGERS:
            patterns.append(Pattern(len(self._kinds), regex))
            self._kinds.append((-1, decoder))
        self.engine: Engine = make_engine(patterns, engine)
        # Opaque texts (keyed transforms' outputs) get a pass of their own without the
        # decoder triggers: their base64 would hit a trigger in nearly every record.
        self._opaque_engine: Engine = make_engine(
            [p for p in patterns if self._kinds[p.id][0] >= 0], engine
        )
        self._undecodable = _Undecodable()
        self._custom = _CustomDetectors(custom) if custom else None

    def scan(self, items: Iterable[tuple[str, str]], opaque: Collection[int] = ()) -> list[Finding]:
        """Every (path, detector) hit, deduplicated, in input order.

        ``opaque`` holds indices of items that are outputs of keyed transforms
        (ciphertexts, hashes, tokens): still scanned, never decoded, since their
        content is not chosen by the producer.
        """
        pairs = items if isinstance(items, list | tuple) else list(items)
        count = len(pairs)
        if not count:
            return []
        raw = list(map(_TEXT, pairs))
        hidden = sorted({i for i in opaque if 0 <= i < count}) if opaque else None
        candidates: _Candidates = {}
        if hidden:
            plain = raw.copy()
            plain_items = list(range(count))
            for i in reversed(hidden):  # a few opaque items: cheaper than a pass over all
                del plain[i]
                del plain_items[i]
            texts, origins, joined = _level0(plain, plain_items)
            more, more_origins, more_joined = _level0([raw[i] for i in hidden], hidden)
            first_opaque = len(texts)
            for pid, segment in self._opaque_engine.matches(more_joined):
                index, mode = self._kinds[pid]
                _add_candidate(candidates, (first_opaque + segment, index), mode)
            texts = texts + more
            origins = origins + more_origins
            joins = [joined, more_joined]
        else:
            texts, origins, joined = _level0(raw, list(range(count)))
            joins = [joined]
        limits = self.limits
        kinds = self._kinds
        undecodable = self._undecodable
        overflow: set[int] = set()
        # Decoded views already made, per input item: decoders that give a near copy of
        # their input (percent, text) reach the same view in either order.
        made: set[tuple[int, str]] = set()
        depth, views, chars, start = 0, 0, 0, 0
        while True:
            derived: list[str] = []
            derived_origins: list[int] = []
            for pid, segment in self.engine.matches(joined):
                view = start + segment
                index, mode = kinds[pid]
                if index >= 0:
                    _add_candidate(candidates, (view, index), mode)
                    continue
                origin = origins[view]
                if origin in overflow:
                    continue
                text = texts[view]
                if undecodable.known(mode, text):
                    continue
                produced = False
                try:
                    layer = decode(text, mode, Budget(limits.chars - chars))
                except DecodeTooLarge:
                    overflow.add(origin)
                    continue
                for decoded in layer:
                    norm = normalize(decoded)
                    if norm == text:
                        continue
                    produced = True
                    if (origin, norm) in made:
                        continue  # reached by another path (percent then text, text then percent)
                    made.add((origin, norm))
                    views += 1
                    chars += len(norm)
                    if depth >= limits.depth or views > limits.views or chars > limits.chars:
                        overflow.add(origin)
                        break
                    derived.append(norm)
                    derived_origins.append(origin)
                if not produced:
                    undecodable.add(mode, text)
            if not derived:
                break
            start = len(texts)
            joined = JOIN.join(derived)
            texts = texts + derived  # never the caller's list
            origins.extend(derived_origins)
            joins.append(joined)
            depth += 1

        found: set[tuple[int, str]] = {(origin, DECODE_LIMIT) for origin in overflow}
        if candidates:
            done: set[tuple[str, int]] = set()
            detectors = self.detectors
            siblings: _Siblings | None = None
            for (view, index), modes in sorted(candidates.items()):
                origin = origins[view]
                path = pairs[origin][0]
                if (path, index) in done:
                    continue
                det = detectors[index]
                hit = det.find(texts[view], path, modes)
                words = det.context
                if not hit and words is not None and path.endswith(_Siblings.LEAVES):
                    siblings = siblings or _Siblings(pairs)
                    if has_context(words, siblings.of(origin)):
                        hit = det.find(texts[view], f"{path} {det.context_word}", modes)
                if hit:
                    done.add((path, index))
                    found.add((origin, det.name))
        if self._custom is not None:
            found.update(self._custom.run(joins, texts, origins))
        if not found:
            return []
        order = self._order
        seen: set[tuple[str, str]] = set()
        findings = []
        for origin, name in sorted(found, key=lambda f: (f[0], order[f[1]])):
            key = (pairs[origin][0], name)
            if key not in seen:
                seen.add(key)
                findings.append(Finding(*key))
        return findings

    def scan_text(self, text: str) -> list[str]:
        """Detector names that hit in one text (for field names / paths)."""
        return [finding.detector for finding in self.scan((("", text),))]


def build_scanner(
    builtin: Sequence[str],
    custom: Sequence[tuple[str, str] | tuple[str, str, bool]],
    *,
    phone_regions: Sequence[str] = DEFAULT_REGIONS,
    engine: str = "auto",
) -> Scanner:
    """Raises ValueError naming the unknown detector / bad regex / unknown region.

    ``custom`` entries are ``(name, pattern)`` or ``(name, pattern, ignore_case)``.
    """
    detectors: list[Detector] = []
    for name in builtin:
        cls = BUILTIN_DETECTORS.get(name)
        if cls is None:
            known = ", ".join(sorted(BUILTIN_DETECTORS))
            raise ValueError(f"unknown DLP detector {name!r} (built-ins: {known})")
        detectors.append(PhoneDetector(phone_regions) if cls is PhoneDetector else cls())
    customs: list[CustomDetector] = []
    for entry in custom:
        name, pattern = entry[0], entry[1]
        ignore_case = len(entry) > 2 and bool(entry[2])  # type: ignore[misc]
        if name in BUILTIN_DETECTORS or name == DECODE_LIMIT:
            raise ValueError(f"custom DLP detector {name} clashes with the built-in of that name")
        customs.append(CustomDetector(name, pattern, ignore_case=ignore_case))
    return Scanner(detectors, customs, engine=engine)
