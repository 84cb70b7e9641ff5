"""Per-boundary statistics tables: counts per source partition, never values.

Design (measured on tansu, see README "Operators' views"):

* One Faust ``Table`` per boundary, ``zoneapp-stats-<boundary>``, keyed by
  ``"<source topic>#<partition>"`` (JSON-encoded keys). The row of source partition
  ``p`` is sent to changelog partition ``p``: Faust co-partitions every topic with
  the same partition count, so the worker that consumes ``p`` is also the active
  owner of the row, and is its only writer.
* Rows hold absolute values, flushed from the in-memory counters every
  ``ZONEAPP_STATS_FLUSH_INTERVAL`` seconds (and when partitions are revoked). A
  replayed or truncated changelog therefore converges on the next flush.
* tansu reports end offsets after multi-record batches wrongly, so Faust's recovery
  can stop before the last records of a changelog partition. A boundary reading one
  source topic writes one row per changelog partition per flush, and flushes are
  seconds apart, so every changelog batch holds one record and recovery is exact.
* A new owner starts from the recovered row; ``offset`` in the row (the last source
  offset counted) makes it skip records that the old owner already counted and that
  are redelivered to it (at-least-once), so nothing is counted twice.
* Rows of a worker's active partitions are served by that worker; the web views
  gather them from every worker (see ``zoneapp.web.cluster``), so any worker answers
  with the same numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import faust
from faust.types import TP

from zoneapp.core.stats import PartitionStats, row_key
from zoneapp.policy import CompiledBoundary
from zoneapp.runtime import Runtime

log = logging.getLogger(__name__)

#: str keys and dict values: Faust serializes both as JSON (key_serializer "json"), so the
#: router hashes keys exactly as the producer's partitioner does.
JSON_TABLE: dict[str, Any] = {"key_type": str, "value_type": None}


def table_name(boundary: str) -> str:
    return f"zoneapp-stats-{boundary}"


class StatsCounters:
    """The counters of the partitions this process owns, without Faust: counting is the
    same in a worker (:class:`StatsTables`) and in the in-process tests
    (``zoneapp.tables.memory.MemoryStats``)."""

    def __init__(self, boundaries: Iterable[CompiledBoundary]) -> None:
        self.zones: dict[str, tuple[str, str]] = {}
        self.sources: dict[str, tuple[str, ...]] = {}
        #: (boundary, topic, partition) -> counters owned by this worker right now.
        self.local: dict[tuple[str, str, int], PartitionStats] = {}
        for b in boundaries:
            self.zones[b.name] = (b.source_zone.name, b.destination_zone.name)
            self.sources[b.name] = b.sources

    def stored_row(self, boundary: str, key: str) -> Any:
        """The row last written for ``key`` (a new owner continues from it), or None."""
        return None

    # -- writing (owner only) ----------------------------------------------------------

    def _counters(self, boundary: str, topic: str, partition: int) -> PartitionStats:
        slot = (boundary, topic, partition)
        stats = self.local.get(slot)
        if stats is None:
            row = self.stored_row(boundary, row_key(topic, partition))
            if isinstance(row, dict):
                stats = PartitionStats.from_row(row)
            else:
                source_zone, destination_zone = self.zones[boundary]
                stats = PartitionStats(boundary, topic, partition, source_zone, destination_zone)
                stats.history = [[time.time(), 0, 0, 0]]  # counting starts now: rates too
            stats.dirty = True
            self.local[slot] = stats
        return stats

    def on_batch(
        self,
        boundary: str,
        records: Sequence[Any],
        outcomes: Sequence[Any],
        elapsed: float,
        delayed: Collection[int] = (),
    ) -> None:
        """Count a finished batch (synchronous, no I/O: called on the hot path).
        ``delayed``: indices of the records that waited for the ingress rate limit."""
        latency = elapsed / max(1, len(records))
        current: PartitionStats | None = None
        waited = set(delayed)
        for i, (record, outcome) in enumerate(zip(records, outcomes, strict=True)):
            if (
                current is None
                or current.partition != record.partition
                or current.topic != record.topic
            ):
                current = self._counters(boundary, record.topic, record.partition)
            current.on_record(record.offset, outcome, latency, i in waited)


class StatsTables(StatsCounters):
    """This worker's per-partition counters and the Faust tables they are flushed to."""

    def __init__(self, app: faust.App, runtime: Runtime) -> None:
        super().__init__(runtime.boundaries)
        self.app = app
        self.runtime = runtime
        self.tables: dict[str, Any] = {}
        for b in runtime.boundaries:
            self.tables[b.name] = app.Table(
                table_name(b.name),
                default=None,
                partitions=runtime.settings.topic_partitions,
                help=f"zoneapp counters of boundary {b.name}, per source partition",
                **JSON_TABLE,
            )

    def stored_row(self, boundary: str, key: str) -> Any:
        return self.tables[boundary].data.get(key)

    def _assigned(self) -> set[TP]:
        try:
            return set(self.app.consumer.assignment())
        except Exception:  # consumer not started yet
            return set()

    def flush(self, only: Iterable[tuple[str, str, int]] | None = None) -> int:
        """Write the rows of this worker's partitions to their tables; returns rows written."""
        assigned = self._assigned()
        # Partitions assigned but idle still get a row (with their lag).
        for boundary, topics in self.sources.items():
            for tp in assigned:
                if tp.topic in topics:
                    self._counters(boundary, tp.topic, tp.partition)
        now = time.time()
        written = 0
        for slot in list(only if only is not None else self.local):
            stats = self.local.get(slot)
            if stats is None:
                continue
            tp = TP(stats.topic, stats.partition)
            if only is None and tp not in assigned:
                del self.local[slot]  # no longer ours: the new owner writes it
                continue
            lag = self._lag(tp, stats.offset)
            if lag is not None:
                stats.dirty = stats.dirty or lag != stats.lag
                stats.lag = lag
            if not stats.dirty and now - stats.updated < 10.0:
                continue
            row = stats.to_row(now)
            table = self.tables[stats.boundary]
            table.data[stats.key] = row
            table.send_changelog(stats.partition, stats.key, row)
            written += 1
        return written

    def _lag(self, tp: TP, offset: int) -> int | None:
        try:
            highwater = self.app.consumer.highwater(tp)
        except Exception:
            return None
        if highwater is None or highwater < 0:
            return None
        return max(0, int(highwater) - (offset + 1))

    async def on_revoked(self, revoked: Iterable[TP]) -> None:
        gone = {(tp.topic, tp.partition) for tp in revoked}
        slots = [s for s in self.local if (s[1], s[2]) in gone]
        if slots:
            self.flush(only=slots)
            await self.app.producer.flush()
            for slot in slots:
                self.local.pop(slot, None)

    # -- reading -----------------------------------------------------------------------

    def local_rows(self) -> list[dict[str, Any]]:
        """Rows of the changelog partitions this worker is the active owner of."""
        actives = self._active_changelog_partitions()
        rows: list[dict[str, Any]] = []
        for table in self.tables.values():
            mine = actives.get(table.changelog_topic.get_topic_name(), set())
            for row in list(table.data.values()):
                if isinstance(row, dict) and int(row.get("partition", -1)) in mine:
                    rows.append(row)
        return rows

    def _active_changelog_partitions(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        try:
            actives = self.app.assignor.assigned_actives()
        except Exception:
            return out
        for tp in actives:
            out.setdefault(tp.topic, set()).add(tp.partition)
        return out


def register_stats_tables(
    app: faust.App, runtime: Runtime
) -> tuple[StatsTables, Callable[..., None]]:
    """Declare the tables, the flush timer and the revoke hook; returns (tables, on_batch)."""
    stats = StatsTables(app, runtime)
    interval = runtime.settings.stats_flush_interval

    @app.timer(interval=interval, name="zoneapp.stats.flush")  # type: ignore[untyped-decorator]
    async def flush_stats() -> None:
        stats.flush()

    @app.on_partitions_revoked.connect  # type: ignore[untyped-decorator, arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        await stats.on_revoked(revoked)

    return stats, stats.on_batch
