"""Never commit past records the broker skipped: rewind and re-read (Faust private patches).

**Why.** When a partition's next record is not the offset after the last one read, Faust
records the hole as a "gap" and later commits past it. That is right for the control
records of transactional producers and for compacted topics on real Kafka, but it also
hides records a broker failed to deliver. tansu does exactly that when a fetch position
falls inside a multi-record batch (after a restart or a rebalance): it serves the *next*
batch, and the rest of the current one would never be processed (README, known issues;
/work/shared/ENVIRONMENT.md "Records lost on restart").

**What.** :class:`Rewinder` wraps the aiokafka driver's ``_fetch_records`` (the one
place Faust pulls records from aiokafka, before any of them reaches an agent). For each
partition it knows the position the consumer expected; when the records served start
past it, they are held back and the partition is sought earlier (1, 2, 4, ... offsets
back), dropping what comes back below the expected position. Then:

- the expected offset arrives: the skipped batch was re-read, nothing is lost;
- the broker serves records before it, and then one after it: the hole is real (Kafka's
  transaction markers, compaction), so the records go on and Faust records the gap as
  before (``zoneapp.offsets`` logs it);
- after ``MAX_STEP`` offsets back without either, the records go on, logged as an error.

On real Kafka a fetch returns the batch that holds its position, so the first branch is
never needed; a genuine hole costs one rewind and re-fetch per hole (markers of a
transactional producer: one per transaction). The patches are installed once, by
``zoneapp.application``, and tested on the embedded broker
(``tests/integration/test_offset_gaps.py``). Upstream: faust-streaming treats every gap
as skippable by design (``Consumer._add_gap``); tansu's fetch defect is its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from zoneapp.agents.fence import fence_of

log = logging.getLogger("zoneapp.offsets")
_PATCHED = "_zoneapp_offset_patches"
#: How far back a rewind may go before the records are let through (and logged).
MAX_STEP = 1 << 16


@dataclass
class _Rewind:
    expected: int
    step: int
    saw_earlier: bool = False


class Rewinder:
    """The per-consumer state of partitions being re-read (one per consumer thread)."""

    def __init__(self) -> None:
        self.rewinding: dict[Any, _Rewind] = {}
        self.rewinds = 0
        self.recovered = 0

    @staticmethod
    def positions(consumer: Any) -> dict[Any, int]:
        """The position aiokafka will hand out next, per assigned partition."""
        subscription = consumer._subscription.subscription
        if subscription is None or subscription.assignment is None:
            return {}
        assignment = subscription.assignment
        found: dict[Any, int] = {}
        for tp in assignment.tps:
            state = assignment.state_value(tp)
            if state.has_valid_position:
                found[tp] = state.position
        return found

    def filter(self, consumer: Any, before: dict[Any, int], records: Any) -> Any:
        """``records`` (TP -> list of ConsumerRecord) with skipped-ahead partitions held
        back and sought earlier; called on the consumer thread's loop."""
        if not records:
            return records
        for tp in list(records):
            batch = records[tp]
            state = self.rewinding.get(tp)
            position = before.get(tp)
            if (
                state is not None
                and position is not None
                and not (max(0, state.expected - state.step) <= position <= state.expected)
            ):
                # Sought by someone else meanwhile (Faust after a rebalance, a seek to the
                # committed offset): that position is what is expected now.
                del self.rewinding[tp]
                state = None
            expected = state.expected if state else position
            if expected is None or not batch:
                continue
            if state is not None:
                kept = [r for r in batch if r.offset >= expected]
                state.saw_earlier = state.saw_earlier or len(kept) < len(batch)
                batch = records[tp] = kept
                if not batch:
                    del records[tp]
                    continue
            first = batch[0].offset
            if first <= expected:
                if state is not None:
                    self.recovered += 1
                    log.warning(
                        "offset gap on %s[%s] closed: offsets from %d re-read after a rewind",
                        tp.topic, tp.partition, expected,
                    )  # fmt: skip
                    del self.rewinding[tp]
                continue
            if state is not None and state.saw_earlier:
                log.warning(
                    "offset gap on %s[%s]: offsets %d..%d do not exist on the broker "
                    "(re-read around them); going on",
                    tp.topic, tp.partition, expected, first - 1,
                )  # fmt: skip
                del self.rewinding[tp]
                continue
            step = state.step * 2 if state else 1
            if step > MAX_STEP or (state is not None and expected - state.step <= 0):
                log.error(
                    "offset gap on %s[%s]: offsets %d..%d were never served after rewinding "
                    "%d offsets; going on without them (run `faust -A zoneapp reconcile`)",
                    tp.topic, tp.partition, expected, first - 1, min(step, expected),
                )  # fmt: skip
                self.rewinding.pop(tp, None)
                continue
            self.rewinding[tp] = _Rewind(expected, step)
            self.rewinds += 1
            consumer.seek(tp, max(0, expected - step))
            del records[tp]
        return records


def install() -> None:
    """Install both patches once per process (idempotent)."""
    thread: Any = faust_aiokafka.AIOKafkaConsumerThread
    cls: Any = faust_consumer.Consumer
    if getattr(cls, _PATCHED, False):
        return
    original_gap = cls._add_gap
    original_fetch = thread._fetch_records

    async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        log.warning(
            "offset gap on %s[%s]: offsets %d..%d were not delivered by the broker and will "
            "be committed as skipped (%d records)",
            tp.topic, tp.partition, offset_from, offset_to - 1, max(0, offset_to - offset_from),
        )  # fmt: skip
        await original_gap(self, tp, offset_from, offset_to)

    async def _fetch_records(self: Any, consumer: Any, *args: Any, **kwargs: Any) -> Any:
        rewinder = self.__dict__.setdefault("_zoneapp_rewinder", Rewinder())
        fence = fence_of(consumer._fetcher)
        seeks = dict(fence.seeks)
        before = rewinder.positions(consumer)
        records = await original_fetch(self, consumer, *args, **kwargs)
        for tp in list(records or ()):
            if fence.seeks.get(tp, 0) != seeks.get(tp, 0):
                # Sought meanwhile (a rebalance's seek to the committed offset, on the
                # thread's other worker): the position read before is stale, and what
                # was served is what that seek asked for.
                before.pop(tp, None)
                rewinder.rewinding.pop(tp, None)
        return rewinder.filter(consumer, before, records)

    cls._add_gap = _add_gap
    thread._fetch_records = _fetch_records
    setattr(cls, _PATCHED, True)
