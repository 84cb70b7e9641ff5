"""Dropping redelivered records on the consumer side (delivery is at least once).

A worker that stops after producing a batch but before committing its offsets produces
that batch again after restart; so does a rebalance mid-batch. Every output carries
``zoneapp-boundary`` and ``zoneapp-record-id`` (the source ``topic/partition/offset``),
which together name one source record through one boundary. A downstream consumer
keeps a :class:`Deduplicator` and skips what it has seen::

    dedupe = Deduplicator(window=100_000)
    for msg in consumer:
        if dedupe.first_time(msg.headers):
            handle(msg)

Decisions: the window is a count of ids (memory stays bounded, about 150 bytes an id),
evicting the oldest; redeliveries arrive within one uncommitted batch of the original,
so a window a few times the producer's batch size is enough. A record without the
headers is never called a duplicate (it did not come through zoneapp). The window lives
in the consumer's process: after the consumer's own restart, its committed offsets are
what prevents reprocessing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

__all__ = ["BOUNDARY_HEADER", "RECORD_ID_HEADER", "Deduplicator"]

RECORD_ID_HEADER = "zoneapp-record-id"
BOUNDARY_HEADER = "zoneapp-boundary"

Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "replace")


class Deduplicator:
    """Remembers the last ``window`` (boundary, record id) pairs it was shown."""

    def __init__(self, window: int = 100_000) -> None:
        if window < 1:
            raise ValueError("the window must hold at least one record id")
        self.window = window
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.duplicates = 0

    def first_time(self, headers: Headers) -> bool:
        """True for a record not seen within the window (handle it), False for a repeat."""
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        found = {name: _text(value) for name, value in pairs}
        record_id = found.get(RECORD_ID_HEADER)
        if not record_id:
            return True
        key = (found.get(BOUNDARY_HEADER) or "", record_id)
        if key in self._seen:
            self._seen.move_to_end(key)
            self.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > self.window:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)

    def __repr__(self) -> str:  # ids name source offsets, not values; still, counts only
        return f"Deduplicator(window={self.window}, held={len(self)}, dropped={self.duplicates})"
