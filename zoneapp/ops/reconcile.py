"""``faust -A zoneapp reconcile``: prove from the topics that nothing was lost.

Reads, with plain aiokafka clients and the worker's own broker settings:

1. the committed offsets of the workers' consumer group (``ZONEAPP_APP_ID``), first, so
   every output of a committed record is already in its topic (the guard produces a
   batch, then commits it);
2. which source offsets exist in the range checked (only offsets are kept: values are
   read by the client but never decoded);
3. the lineage headers of every record in each boundary's destination topic and its
   source zone's quarantine topic.

The range per source partition is ``[max(earliest, window start), min(committed,
window end))``: records at or after the committed offset are in flight, not missing.
A time window maps to offsets with the broker's offset-for-time index.

Reading the source topic needs the read rights of a worker; run it with the worker's
credentials. Output topics are read whole (their retention bounds the cost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from zoneapp.formats import parse_utc, utc_iso
from zoneapp.ops.ledger import Ledger
from zoneapp.policy import CompiledPolicy
from zoneapp.settings import Settings

__all__ = ["Busy", "LedgerRuns", "Window", "reconcile"]

#: Lineage headers the ledger reads; nothing else of an output is looked at.
LINEAGE = ("zoneapp-boundary", "zoneapp-source-topic", "zoneapp-source-partition",
           "zoneapp-source-offset", "zoneapp-release-id")  # fmt: skip


INT64 = 1 << 63


@dataclass(frozen=True)
class Window:
    """What to check: offsets ``[first_offset, end_offset)`` and/or a time range (epoch ms)."""

    first_offset: int | None = None
    end_offset: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None, offsets: str | None) -> Window:
        """``since``/``until`` (ISO-8601 or epoch milliseconds) and ``offsets`` FIRST:END,
        as the CLI and the HTTP endpoint take them; ValueError names what is wrong."""

        def bounded(value: int, what: str) -> int:
            if not 0 <= value < INT64:  # what Kafka's offsets and timestamps can hold
                raise ValueError(f"{what} is out of range")
            return value

        def moment(text: str | None, what: str) -> int | None:
            if text is None:
                return None
            try:
                ms = int(text) if text.isascii() and text.isdigit() else int(parse_utc(text) * 1000)
            except OverflowError:
                raise ValueError(f"{what} is out of range") from None
            except ValueError:  # a fixed message: the caller's text is not echoed
                raise ValueError(f"{what} takes ISO-8601 or epoch milliseconds") from None
            return bounded(ms, what)

        first = end = None
        if offsets is not None:
            head, sep, tail = offsets.partition(":")
            both = head + tail
            if not sep or not both or not (both.isascii() and both.isdigit()):
                raise ValueError("offsets takes FIRST:END (either may be left out), e.g. 100:2000")
            first = bounded(int(head), "offsets") if head else None
            end = bounded(int(tail), "offsets") if tail else None
        window = cls(first, end, moment(since, "since"), moment(until, "until"))
        # A reversed range checks nothing, and a check that reads nothing must not say OK.
        if first is not None and end is not None and end <= first:
            raise ValueError("offsets: END must be above FIRST")
        since_ms, until_ms = window.since_ms, window.until_ms
        if since_ms is not None and until_ms is not None and until_ms <= since_ms:
            raise ValueError("until must be later than since")
        return window

    def describe(self) -> dict[str, int | None]:
        return {
            "first_offset": self.first_offset,
            "end_offset": self.end_offset,
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
        }


async def _drain(
    consumer: AIOKafkaConsumer,
    bounds: dict[TopicPartition, tuple[int, int | None]],
    on_record: Any,
    deadline: float,
) -> None:
    """Read each partition from its start to its end (exclusive; None: to the highwater of
    the fetch responses, because tansu's ListOffsets(latest) is wrong after multi-record
    batches while the highwater a fetch carries is right), calling on_record."""
    todo = {tp: b for tp, b in bounds.items() if b[1] is None or b[1] > b[0]}
    if not todo:
        return
    consumer.assign(list(todo))
    for tp, (start, _) in todo.items():
        consumer.seek(tp, start)
    while todo:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {sorted(str(tp) for tp in todo)} took too long")
        batches = await consumer.getmany(*todo, timeout_ms=1000)
        for tp, records in batches.items():
            end = todo[tp][1] if tp in todo else 0
            for record in records:
                if end is None or record.offset < end:
                    on_record(tp, record)
        for tp in list(todo):
            end = todo[tp][1]
            if end is None:
                end = consumer.highwater(tp)
                if end is None:
                    continue  # no fetch answered yet
            if await consumer.position(tp) >= end:
                del todo[tp]


async def _committed(
    settings: Settings, group: str, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """The group's committed offsets, through a consumer that never joins the group
    (OffsetFetch, as Faust itself resumes; tansu has no admin ListConsumerGroupOffsets)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_urls(),
        group_id=group,
        enable_auto_commit=False,
        client_id="zoneapp-reconcile-offsets",
        **settings.security.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        found = {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
    return {tp: offset for tp, offset in found.items() if offset is not None and offset >= 0}


async def _partition_counts(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Partitions per topic from the admin API (Metadata for exactly these topics): a
    consumer with no subscription has asked real Kafka about no topic (tansu lists all)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.broker_urls(),
        client_id="zoneapp-reconcile-admin",
        **settings.security.aiokafka_kwargs(),
    )
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


async def reconcile(
    policy: CompiledPolicy,
    settings: Settings,
    window: Window | None = None,
    *,
    boundaries: Iterable[str] | None = None,
    timeout: float = 300.0,
) -> Ledger:
    """The ledger of every boundary (or the named ones) over ``window``."""
    window = window or Window()
    wanted = set(boundaries) if boundaries is not None else None
    chosen = [b for b in policy.boundaries if wanted is None or b.name in wanted]
    deadline = time.monotonic() + timeout
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_urls(),
        group_id=None,
        enable_auto_commit=False,
        client_id="zoneapp-reconcile",
        **settings.security.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        ledger = Ledger()
        sources: dict[TopicPartition, tuple[int, int | None]] = {}
        outputs: dict[str, bool] = {}  # topic -> is a quarantine
        for boundary in chosen:
            outputs[boundary.destination] = False
            outputs.setdefault(boundary.source_zone.quarantine_topic, True)
        sources_of = {topic for boundary in chosen for topic in boundary.sources}
        counts = await _partition_counts(settings, sorted(sources_of | set(outputs)))
        unknown = sorted(t for t in sources_of | set(outputs) if not counts.get(t))
        if unknown:  # a check that reads nothing must not say OK
            raise LookupError(f"the broker has no topic {', '.join(unknown)}")
        by_topic = {t: [TopicPartition(t, p) for p in range(counts[t])] for t in sources_of}
        out_tps = [TopicPartition(t, p) for t in outputs for p in range(counts[t])]
        # First the commits: every output of a committed record is then already written.
        committed = await _committed(
            settings, settings.app_id, [tp for tps in by_topic.values() for tp in tps]
        )
        for boundary in chosen:
            for topic in boundary.sources:
                tps = by_topic[topic]
                if not tps:
                    continue
                first = await consumer.beginning_offsets(tps)
                # Only to tell an empty partition from one never committed: tansu's
                # latest offset can be low, but it is above the earliest once data exists.
                last = await consumer.end_offsets(tps)
                since = (
                    await consumer.offsets_for_times({tp: window.since_ms for tp in tps})
                    if window.since_ms is not None
                    else {}
                )
                until = (
                    await consumer.offsets_for_times({tp: window.until_ms for tp in tps})
                    if window.until_ms is not None
                    else {}
                )
                for tp in tps:
                    start = max(first[tp], window.first_offset or 0)
                    found = since.get(tp)
                    if window.since_ms is not None:
                        start = max(start, found.offset if found else committed.get(tp, 0))
                    end = committed.get(tp, start)
                    if window.end_offset is not None:
                        end = min(end, window.end_offset)
                    if window.until_ms is not None:
                        cut = until.get(tp)
                        end = min(end, cut.offset) if cut else end
                    end = max(end, start)
                    row = ledger.partition(boundary.name, topic, tp.partition)
                    row.start, row.committed = start, end
                    # Records the workers' group never committed cannot be shown handled.
                    row.uncommitted = tp not in committed and last[tp] > first[tp]
                    sources[tp] = (start, end)

        def on_source(tp: TopicPartition, record: Any) -> None:
            for (_, topic, partition), row in ledger.partitions.items():
                if topic == tp.topic and partition == tp.partition:
                    row.source.add(record.offset)

        await _drain(consumer, sources, on_source, deadline)

        if out_tps:
            begin = await consumer.beginning_offsets(out_tps)
            bounds: dict[TopicPartition, tuple[int, int | None]] = {
                tp: (begin[tp], None) for tp in out_tps
            }

            def on_output(tp: TopicPartition, record: Any) -> None:
                lineage = {
                    k: bytes(v).decode("utf-8", "replace")
                    for k, v in record.headers
                    if k in LINEAGE
                }
                ledger.output(lineage, quarantine=outputs[tp.topic])

            await _drain(consumer, bounds, on_output, deadline)
        return ledger
    finally:
        await consumer.stop()


class Busy(RuntimeError):
    """Another reconciliation is running on this worker."""


class Reconcile(Protocol):
    """:func:`reconcile`'s signature (tests give LedgerRuns a ledger of their own)."""

    def __call__(
        self,
        policy: CompiledPolicy,
        settings: Settings,
        window: Window | None = None,
        *,
        boundaries: Iterable[str] | None = None,
        timeout: float = 300.0,
    ) -> Awaitable[Ledger]: ...


class LedgerRuns:
    """A worker's reconciliations for its HTTP endpoint: one at a time, and an answer
    reused for ``ttl`` seconds for the same question, so that callers cannot make a
    worker read its topics over and over; the last one is kept for ``/zones``."""

    def __init__(
        self, ttl: float = 30.0, clock: Any = time.time, run: Reconcile | None = None
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._run: Reconcile = run or reconcile
        self._lock = asyncio.Lock()
        self._answers: dict[Any, tuple[float, dict[str, Any]]] = {}
        self.last: dict[str, Any] | None = None

    async def summary(
        self,
        policy: CompiledPolicy,
        settings: Settings,
        window: Window,
        boundaries: list[str] | None,
        *,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """The ledger's summary with ``generated_at`` and the window, reused when fresh.

        Raises :class:`Busy` instead of queueing behind another question's run: a caller
        cannot line up reads of every topic."""
        key = (window, tuple(sorted(boundaries or ())))
        found = self._answers.get(key)
        if found is not None and self._clock() - found[0] < self.ttl:
            return found[1]
        if self._lock.locked():
            raise Busy("a reconciliation is running on this worker")
        # Nothing awaits between the check above and taking the free lock, so no other
        # run can have answered this question meanwhile.
        async with self._lock:
            ledger = await self._run(
                policy, settings, window, boundaries=boundaries, timeout=timeout
            )
            now = self._clock()
            answer = {
                "generated_at": utc_iso(now),
                "window": window.describe(),
                "boundaries": sorted(boundaries) if boundaries else None,
                **ledger.summary(),
            }
            self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self.ttl}
            self._answers[key] = (now, answer)
            self.last = answer
            return answer

    def brief(self) -> dict[str, Any] | None:
        """The verdict of the last run, without its per-partition rows (for ``/zones``)."""
        if self.last is None:
            return None
        return {k: v for k, v in self.last.items() if k != "partitions"}


def run(policy: CompiledPolicy, settings: Settings, window: Window | None = None) -> Ledger:
    """Synchronous entry for scripts."""
    return asyncio.run(reconcile(policy, settings, window))
