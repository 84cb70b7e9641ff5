"""After a rebalance, re-read uncommitted partitions from the start (a Faust private patch).

**Why.** Faust drops records it has already taken from aiokafka when a rebalance stops the
flow mid-batch (``Consumer.getmany``: "getmany called while flow not active", or a
callback cut short by ``suspend_flow``). aiokafka's position has moved past them, so
Faust relies on its "seek to committed offsets" after the rebalance to fetch them again.
That seek (``AIOKafkaConsumer.seek_to_committed``) skips every partition whose committed
offset is missing or 0, so on a partition nothing was committed on yet the dropped
records are never re-read: the worker holds the partition and processes nothing more
of it until it restarts, or, with more records arriving, commits past the hole.

Seen on Apache Kafka 4.4 and tansu with two workers started together and records
produced during their second rebalance (``tests/integration/web`` on a loaded machine,
half of the feed unprocessed; reproduced with ``DEVLOG=1`` showing the drop).

**What.** :func:`install` replaces the aiokafka driver's ``seek_to_committed``: every
partition is sought to its committed offset (all read first, then sought together), and
each stream partition (acks enabled, not a table changelog) without a
committed offset is sought to its beginning, and one committed at 0 is sought to 0:
where a consumer without a commit starts under ``auto_offset_reset=earliest`` (the
setting zoneapp runs with; under ``latest`` the patch stands aside). Records handled but
not yet committed are read again; delivery is at-least-once and the boundary's record
ids make the repeat harmless (README, "Delivery").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("zoneapp.offsets")
_PATCHED = "_zoneapp_reseek_patch"


def stream_partitions(app: Any, committed: Mapping[Any, int | None]) -> tuple[list[Any], list[Any]]:
    """The stream partitions to seek: (to their beginning, to offset 0)."""
    changelogs = app.tables.changelog_topics
    beginning: list[Any] = []
    zero: list[Any] = []
    for tp, offset in committed.items():
        if offset or tp.topic in changelogs or not app.topics.acks_enabled_for(tp.topic):
            continue
        (zero if offset == 0 else beginning).append(tp)
    return beginning, zero


async def seek_uncommitted(app: Any, consumer: Any) -> Mapping[Any, int | None]:
    """What ``consumer.seek_to_committed()`` does, then the partitions it leaves alone;
    on the consumer thread's loop.

    The committed offsets are read first, all at once, and the seeks then made together:
    aiokafka's own ``seek_to_committed`` awaits a round trip between two partitions'
    seeks, and a fetch that runs in between delivers records Faust then mistakes for an
    offset gap (agents/fence.py).
    """
    tps = sorted(consumer.assignment())
    offsets = await asyncio.gather(*(consumer.committed(tp) for tp in tps))
    committed: dict[Any, int | None] = dict(zip(tps, offsets, strict=True))
    for tp, offset in committed.items():
        if offset and offset > 0:
            consumer.seek(tp, offset)
    if app.conf.consumer_auto_offset_reset != "earliest":
        return committed
    beginning, zero = stream_partitions(app, committed)
    for tp in zero:
        consumer.seek(tp, 0)
    if beginning:
        await consumer.seek_to_beginning(*beginning)
    if beginning or zero:
        log.info(
            "rebalance: %d stream partitions with nothing committed re-read from the start",
            len(beginning) + len(zero),
        )
    return committed


def install() -> None:
    """Install the patch once per process (idempotent)."""
    thread: Any = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread, _PATCHED, False):
        return

    async def seek_to_committed(self: Any) -> Mapping[Any, int | None]:
        result: Mapping[Any, int | None] = await self.call_thread(
            seek_uncommitted, self.app, self._ensure_consumer()
        )
        return result

    thread.seek_to_committed = seek_to_committed
    setattr(thread, _PATCHED, True)
