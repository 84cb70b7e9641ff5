"""Records fetched before a seek are not delivered after it (Faust private patches).

**Why.** After a rebalance Faust seeks every stream partition back to its committed offset
and sets its read offset there. A fetch that aiokafka answered *before* that seek, but
that reaches Faust's drain loop *after* it, still holds records from the old position,
further on. Faust delivers them, sees the distance to its new read offset as a "gap" and
later commits past it; the records in between are dropped when they are fetched again
(they are below the read offset now). Records handled before the rebalance are merely
not repeated; records Faust had fetched but not handled (it drops the rest of a batch
when a rebalance stops its flow) are lost.

Seen on Apache Kafka 4.4: a 10 s network cut made the worker rejoin while its commits
had failed, and the fault suite's checker found records that never reached an output
("offset gap on restricted.payments[1]: offsets 72..150 ... committed as skipped").
Likewise when a restarted worker's first rebalance is followed by a second one.

**What.** Every seek of an aiokafka consumer (``Fetcher.seek_to`` and
``Fetcher.request_offset_reset``: the two places all of aiokafka's seeks end in) counts,
per partition, in a :class:`Fence` kept on the fetcher. The driver's ``_fetch_records``
stamps what it returns with the counts at that moment. Faust's ``getmany`` (the
generator its drain loop reads) then:

- does not deliver a record of a partition sought since its batch was fetched: the seek
  has already put aiokafka's position where the seeker wanted it, so the record is
  fetched again from there;
- when a seek came while the drain loop was handing a record to the agent, puts back
  the read offset the seek set (the drain loop overwrites it with the stale record's
  offset once the hand-over returns, and would then drop the re-fetched records);
- on a stream topic, delivers a current record that lies below Faust's read offset
  instead of dropping it as already read (it would never be acked, so the partition's
  commit stalls, or a later gap commits past it): aiokafka never serves a record
  below its position, so such a read offset is stale, and a repeat is harmless;
- when ``perform_seek`` sets a stream partition's read offset back to the committed
  offset after records fetched *since* the seek were handed over (it seeks partition
  by partition and sets the read offsets at the end), keeps the read offset at the
  last of them: the next record would otherwise look like a gap, and Faust would
  commit past records still waiting in the agent's buffer.

Faust's own ``seek`` is moved onto the consumer thread (it called aiokafka from the event
loop's thread), so a seek never falls between the moment records leave aiokafka and
the moment they are stamped.

It acts only where a seek superseded fetched records or left a read offset stale, so a
worker without rebalances never sees it act, on Kafka and tansu alike. Installed once
by ``zoneapp.application``; tested in ``tests/unit/agents/test_fence.py``,
``tests/integration/test_reseek.py`` (every kind of seek on a real partition) and by
the fault suite (kill-and-restart, broker cut).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka.consumer import fetcher as aiokafka_fetcher
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("zoneapp.offsets")
_PATCHED = "_zoneapp_fence_patches"


class Fence:
    """How many times each partition was sought (one per aiokafka fetcher)."""

    def __init__(self) -> None:
        self.seeks: dict[Any, int] = {}

    def sought(self, tps: Iterable[Any]) -> None:
        for tp in tps:
            self.seeks[tp] = self.seeks.get(tp, 0) + 1

    def stamp(self, records: Mapping[Any, Any]) -> dict[Any, int]:
        return {tp: self.seeks.get(tp, 0) for tp in records}

    def superseded(self, stamp: Mapping[Any, int]) -> list[Any]:
        """Partitions sought since ``stamp`` was taken."""
        return [tp for tp, count in stamp.items() if self.seeks.get(tp, 0) != count]


class Stamped(dict[Any, Any]):
    """A fetch's records (TP -> records) with the seek counts they were fetched under."""

    fence: Fence
    stamp: dict[Any, int]


def fence_of(fetcher: Any) -> Fence:
    fence: Fence | None = fetcher.__dict__.get("_zoneapp_fence")
    if fence is None:
        fence = fetcher.__dict__["_zoneapp_fence"] = Fence()
    return fence


def _fence_of_consumer(consumer: Any) -> Fence | None:
    """The fence of a Faust consumer's aiokafka fetcher, if it has been created."""
    thread = getattr(consumer, "_thread", None)
    aiokafka_consumer = getattr(thread, "_consumer", None)
    fetcher = getattr(aiokafka_consumer, "_fetcher", None)
    return None if fetcher is None else fetcher.__dict__.get("_zoneapp_fence")


def _seek_counts(consumer: Any) -> dict[Any, int]:
    """The consumer's seek counts now (empty before its first seek)."""
    fence = _fence_of_consumer(consumer)
    return dict(fence.seeks) if fence is not None else {}


def _note_seek_reads(consumer: Any, before: Mapping[Any, int]) -> None:
    """After a seek of stream partitions: the read offsets it set, with the seek counts
    they belong to, so a stale hand-over cannot overwrite them (the restore rule).

    A record fetched after the seek and already handed over while the seek's caller
    still awaited (``perform_seek`` sets the read offsets only once every partition is
    sought) keeps the read offset at that record: set back to the committed offset,
    the next record would look like a gap, and Faust would commit past records still
    waiting in the agent's buffer.
    """
    fence = _fence_of_consumer(consumer)
    if fence is None:
        return
    reads = consumer.__dict__.setdefault("_zoneapp_seek_reads", {})
    delivered = consumer.__dict__.get("_zoneapp_delivered", {})
    for tp, count in list(fence.seeks.items()):
        if before.get(tp) == count or not _redeliverable(consumer, tp.topic):
            continue
        read = consumer._read_offset[tp]
        handed = delivered.get(tp)
        if handed is not None and handed[0] == count and (read is None or handed[1] > read):
            read = consumer._read_offset[tp] = handed[1]
        reads[tp] = (count, read)


def _redeliverable(consumer: Any, topic: str) -> bool:
    """A stream topic (acks enabled, not a table changelog): handling one of its records
    twice is a duplicate output, which delivery allows. A changelog record applied
    out of order would revert a table, so those keep Faust's behaviour."""
    app = consumer.app
    return bool(app.topics.acks_enabled_for(topic)) and topic not in app.tables.changelog_topics


def undelivered(batch: Mapping[Any, Sequence[Any]], handed: Mapping[Any, int]) -> dict[Any, int]:
    """Per partition of ``batch``, the first offset past the last one handed on (all of
    a partition's records when none was)."""
    found: dict[Any, int] = {}
    for tp, records in batch.items():
        upto = handed.get(tp)
        if not records or (upto is not None and records[-1].offset <= upto):
            continue
        found[tp] = next(r.offset for r in records if upto is None or r.offset > upto)
    return found


async def _refetch_undelivered(consumer: Any, batch: Stamped, handed: Mapping[Any, int]) -> None:
    """Seek a changelog (or other unacked) partition back to the first record of a batch
    that Faust took and did not hand on: it drops a batch's rest when the flow stops or
    the generation changes, and its seek to the committed offsets passes over partitions
    without commits, so nothing would fetch those records again (a table recovery then
    waits for ever: agents/recovery_watch.py). Only where no seek has come since the
    batch was fetched; stream partitions keep Faust's seek to their commit
    (agents/reseek.py)."""
    wanted = {
        tp: offset
        for tp, offset in undelivered(batch, handed).items()
        if not _redeliverable(consumer, tp.topic)
    }
    if not wanted:
        return
    fence, stamp, thread = batch.fence, batch.stamp, consumer._thread

    async def seek() -> list[tuple[Any, int]]:  # on the consumer thread, between fetches
        aiokafka_consumer = thread._ensure_consumer()
        assigned = aiokafka_consumer.assignment()
        done = []
        for tp, offset in wanted.items():
            if fence.seeks.get(tp, 0) == stamp.get(tp) and tp in assigned:
                aiokafka_consumer.seek(tp, offset)
                done.append((tp, offset))
        return done

    try:
        sought = await thread.call_thread(seek)
    except Exception as exc:  # the consumer stopped meanwhile: the next start seeks anyway
        log.info("fetched records not handed on were not sought back (%s)", type(exc).__name__)
        return
    for tp, offset in sought:
        log.info(
            "%s[%s]: fetched records from offset %d were not handed on (the flow stopped); "
            "they are fetched again from there",
            tp.topic, tp.partition, offset,
        )  # fmt: skip


def install() -> None:
    """Install the patches once per process (idempotent). Must come after
    :func:`zoneapp.agents.offset_gaps.install`, so the stamp is taken last."""
    fetcher_cls: Any = aiokafka_fetcher.Fetcher
    thread: Any = faust_aiokafka.AIOKafkaConsumerThread
    delegate: Any = faust_consumer.ThreadDelegateConsumer
    consumer_cls: Any = faust_consumer.Consumer
    if getattr(consumer_cls, _PATCHED, False):
        return
    original_seek_to = fetcher_cls.seek_to
    original_reset = fetcher_cls.request_offset_reset
    original_fetch = thread._fetch_records
    original_wait = consumer_cls._wait_next_records
    original_getmany = consumer_cls.getmany
    original_perform_seek = consumer_cls.perform_seek
    original_consumer_seek = consumer_cls.seek

    def seek_to(self: Any, tp: Any, offset: int) -> None:
        original_seek_to(self, tp, offset)
        fence_of(self).sought((tp,))

    def request_offset_reset(self: Any, tps: Any, strategy: Any) -> Any:
        tps = list(tps)
        try:
            return original_reset(self, tps, strategy)
        finally:  # counted even if it failed part way: some partitions may be reset
            fence_of(self).sought(tps)

    async def _fetch_records(self: Any, consumer: Any, *args: Any, **kwargs: Any) -> Any:
        records = await original_fetch(self, consumer, *args, **kwargs)
        fence = fence_of(consumer._fetcher)
        stamped = Stamped(records or {})
        stamped.fence, stamped.stamp = fence, fence.stamp(stamped)
        return stamped

    async def _seek(self: Any, partition: Any, offset: int) -> None:
        thread_self = self._thread

        async def seek() -> None:  # on the consumer thread's loop, between its fetches
            thread_self._ensure_consumer().seek(partition, offset)

        await thread_self.call_thread(seek)

    async def _wait_next_records(self: Any, timeout: float) -> Any:
        records, active = await original_wait(self, timeout)
        self.__dict__["_zoneapp_batch"] = records if isinstance(records, Stamped) else None
        return records, active

    async def getmany(self: Any, timeout: float) -> Any:
        held: set[Any] = set()
        lowered: set[Any] = set()
        handed: dict[Any, int] = {}
        async for tp, message in original_getmany(self, timeout):
            batch: Stamped | None = self.__dict__.get("_zoneapp_batch")
            count = None if batch is None else batch.stamp.get(tp)
            if batch is None or count is None:
                handed[tp] = message.offset
                yield tp, message
                continue
            fence = batch.fence
            sought_since = fence.seeks.get(tp, 0) != count
            read = self._read_offset[tp]
            if (
                read is not None
                and message.offset < read
                and not sought_since
                and _redeliverable(self, message.topic)
            ):
                # A current record below the read offset: Faust would drop it as already
                # read, never ack it, and stall (or later commit past) the partition.
                # Nothing fetched after a seek is below it unless the read offset is
                # stale; on a stream topic a repeat is harmless, a drop is a loss.
                self._read_offset[tp] = message.offset
                if tp not in lowered:
                    lowered.add(tp)
                    log.info(
                        "%s[%s]: read offset %d is past the fetch position %d; "
                        "re-delivering from there instead of dropping",
                        tp.topic, tp.partition, read, message.offset,
                    )  # fmt: skip
            if sought_since:
                if tp not in held:
                    held.add(tp)
                    log.info(
                        "%s[%s]: fetched records from offset %d held back, the partition "
                        "was sought since; they are fetched again from the new position",
                        tp.topic, tp.partition, message.offset,
                    )  # fmt: skip
                continue
            stream = _redeliverable(self, message.topic)
            if stream:
                self.__dict__.setdefault("_zoneapp_delivered", {})[tp] = (count, message.offset)
            handed[tp] = message.offset
            yield tp, message
            if stream and fence.seeks.get(tp, 0) != count:
                # Sought while the drain loop handed this record over; it has just set
                # the read offset to this record's: the seek's must stand.
                noted = self.__dict__.get("_zoneapp_seek_reads", {}).get(tp)
                if noted is not None and noted[0] == fence.seeks.get(tp, 0):
                    self._read_offset[tp] = noted[1]

        done: Stamped | None = self.__dict__.get("_zoneapp_batch")
        if done:
            await _refetch_undelivered(self, done, handed)

    async def perform_seek(self: Any) -> None:
        before = _seek_counts(self)
        await original_perform_seek(self)
        _note_seek_reads(self, before)

    async def seek(self: Any, partition: Any, offset: int) -> None:
        before = _seek_counts(self)
        await original_consumer_seek(self, partition, offset)
        _note_seek_reads(self, before)

    fetcher_cls.seek_to = seek_to
    fetcher_cls.request_offset_reset = request_offset_reset
    thread._fetch_records = _fetch_records
    delegate._seek = _seek
    consumer_cls._wait_next_records = _wait_next_records
    consumer_cls.getmany = getmany
    consumer_cls.perform_seek = perform_seek
    consumer_cls.seek = seek
    setattr(consumer_cls, _PATCHED, True)
