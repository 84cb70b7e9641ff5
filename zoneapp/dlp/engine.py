"""Multi-pattern engines: which prefilter patterns match in which text, in one pass.

The scanner joins all texts of a record (every view) with a newline, which no
text holds (the normalized view turns line breaks into spaces) and no prefilter
pattern matches, and asks an engine for the set of ``(pattern id, text index)``
pairs that match.  Detectors then validate only those texts in Python.  Because
the answer is a set of texts, not match positions, every engine gives the same
answer; the contract tests in ``tests/unit/dlp/test_engines.py`` check that.

- :class:`HyperscanEngine` (the ``hyperscan`` wheel, Vectorscan): one scan of the
  UTF-8 bytes for all patterns; chosen by measurement (README, "DLP engine").
- :class:`ReEngine`: Python's ``re``, one search per pattern and text with a
  match; the fallback when the wheel does not load.

Prefilter patterns are written in the subset both understand: ASCII character
classes, alternation and repeats; ``^`` and ``$`` mean the edges of one text
(multi-line mode in both); no lookaround or backreferences.  A
negated class (which matches a non-ASCII character as one code point in ``re``
and as its UTF-8 bytes in Hyperscan) is only ever repeated with ``+``, so "this
text contains a match" means the same in both.
"""

from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import add
from typing import Any

__all__ = [
    "ENGINES",
    "Engine",
    "HyperscanEngine",
    "Pattern",
    "ReEngine",
    "available_engines",
    "make_engine",
]

log = logging.getLogger(__name__)

JOIN = "\n"


def _text_ends(parts: Sequence[str] | Sequence[bytes]) -> list[int]:
    """One past the separator after each text: a match ending at ``end`` is in text
    ``bisect_right(ends, end)``.  Built in C (no Python loop per text)."""
    return list(accumulate(map(add, map(len, parts), repeat(1))))


@dataclass(frozen=True, slots=True)
class Pattern:
    """One prefilter pattern; ``caseless`` folds ASCII letters only."""

    id: int
    regex: str
    caseless: bool = False


class Engine(ABC):
    """Compiled once per scanner; ``matches`` is called once per record."""

    name: str

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        ids = [p.id for p in patterns]
        if len(set(ids)) != len(ids):
            raise ValueError("prefilter pattern ids must be unique")
        for p in patterns:
            if "\n" in p.regex or re.compile(p.regex, re.MULTILINE).search(JOIN):
                raise ValueError(f"prefilter pattern {p.id} matches the text separator")
        self.patterns = tuple(patterns)

    @abstractmethod
    def matches(self, joined: str) -> set[tuple[int, int]]:
        """``(pattern id, text index)`` for every pattern that matches in a text of
        ``joined`` (texts joined by :data:`JOIN`)."""


class ReEngine(Engine):
    """Python ``re``: a search per pattern, skipping to the next text after a hit."""

    name = "re"

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        super().__init__(patterns)
        flags = re.ASCII | re.MULTILINE
        self._compiled = [
            (p.id, re.compile(p.regex, flags | (re.IGNORECASE if p.caseless else 0)).search)
            for p in patterns
        ]

    def matches(self, joined: str) -> set[tuple[int, int]]:
        found: set[tuple[int, int]] = set()
        find = joined.find
        seps: list[int] | None = None
        for pid, search in self._compiled:
            m = search(joined)
            while m is not None:
                end = m.end()
                if seps is None:
                    seps = _text_ends(joined.split(JOIN))
                found.add((pid, bisect_right(seps, end)))
                nxt = find(JOIN, end)
                if nxt == -1:
                    break
                m = search(joined, nxt + 1)
        return found


class HyperscanEngine(Engine):
    """Hyperscan / Vectorscan block mode over the UTF-8 bytes of all texts."""

    name = "hyperscan"

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        super().__init__(patterns)
        import hyperscan  # the wheel may be missing or fail to load: make_engine falls back

        self._db: Any = None
        if patterns:
            self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._db.compile(
                expressions=[p.regex.encode() for p in patterns],
                ids=[p.id for p in patterns],
                elements=len(patterns),
                flags=[
                    hyperscan.HS_FLAG_MULTILINE | (hyperscan.HS_FLAG_CASELESS if p.caseless else 0)
                    for p in patterns
                ],
            )

    def matches(self, joined: str) -> set[tuple[int, int]]:
        if self._db is None:
            return set()
        data = joined.encode("utf-8", "surrogatepass")
        hits: list[tuple[int, int]] = []
        add = hits.append
        # The handler only records (pattern id, match end): each call is a Python call
        # from C, so the text of each end is worked out once, after the scan.
        self._db.scan(data, match_event_handler=lambda pid, _s, end, _f, _c: add((pid, end)))
        if not hits:
            return set()
        if b"\n" not in data:
            return {(pid, 0) for pid, _ in hits}
        # The text index is the number of separators before the match end (bisected:
        # a pathological text can give a hit at every offset).
        seps = _text_ends(data.split(b"\n"))
        return {(pid, bisect_right(seps, end)) for pid, end in hits}


ENGINES: dict[str, type[Engine]] = {"hyperscan": HyperscanEngine, "re": ReEngine}


def available_engines() -> list[str]:
    """Engines that load on this machine, best first."""
    names = []
    for name, cls in ENGINES.items():
        try:
            cls([Pattern(0, "[0-9]{2}")])
        except Exception:  # ImportError, OSError from a broken wheel, hyperscan.error
            continue
        names.append(name)
    return names


def make_engine(patterns: Sequence[Pattern], name: str = "auto") -> Engine:
    """The named engine, or with ``auto`` the ``ZONEAPP_DLP_ENGINE`` setting if set,
    else Hyperscan if it loads, else ``re`` (logged)."""
    if name == "auto":
        name = os.environ.get("ZONEAPP_DLP_ENGINE", "auto") or "auto"
    if name != "auto":
        cls = ENGINES.get(name)
        if cls is None:
            raise ValueError(f"unknown DLP engine {name!r} (known: auto, {', '.join(ENGINES)})")
        return cls(patterns)
    try:
        return HyperscanEngine(patterns)
    except ImportError as exc:
        log.warning("DLP: hyperscan unavailable (%s); using the re engine", type(exc).__name__)
        return ReEngine(patterns)
