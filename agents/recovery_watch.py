"""Read a table changelog partition again when its recovery has stalled.

**Why.** After a rebalance Faust's recovery seeks each active changelog partition to the
table's last applied offset and waits until every one has reached its highwater; the
source partitions the worker took over stay suspended until then. Records it fetched
can still be dropped before they reach the recovery queue: Faust drops a fetched batch
when the flow stops or the generation changes while it is handed out, and its seek back
to the committed offsets passes over changelog partitions, which have no commits
(``agents/reseek.py`` mends that for stream partitions only). Nothing fetches such
records again, and the worker waits for ever (Faust logs "No event received for active
tp ... since recovery start"). Seen in CI, on Apache Kafka, in the fault suite's
two-worker scenario: the survivor never finished recovering the violations table after
the other worker was killed, so the 60 records the killed worker had left were
unhandled after 180 s. The exact interleaving was not reproduced (0 of 27 loaded runs
here), so the remedy does not depend on it.

**What.** A service checks every :data:`CHECK_S` seconds, while the worker recovers,
which active changelog partitions still have offsets to read and have received nothing
for :data:`STALL_S` seconds (since the recovery started, their last event, or their
last re-read), and seeks them to the last offset applied (their start if none): the
seek recovery makes when it starts. Applying a changelog's records again, in order, from
an offset already applied leaves the table as it was, so a re-read of a partition that
was merely slow costs only the fetch. Each re-read is logged as a warning with the
partition and the offset, never a record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import faust
from mode import Service

log = logging.getLogger("zoneapp.offsets")

#: How often the recovery is looked at.
CHECK_S = 5.0
#: How long an active changelog partition may receive nothing before it is read again.
STALL_S = 15.0


def quiet_for(
    now: float,
    started_at: float,
    received_at: Mapping[Any, float],
    reread_at: Mapping[Any, float],
    tp: Any,
) -> float:
    """Seconds since the partition's last event or re-read, or since the recovery
    started if those came before it."""
    return now - max(started_at, received_at.get(tp, started_at), reread_at.get(tp, started_at))


def stalled(
    now: float,
    started_at: float,
    received_at: Mapping[Any, float],
    reread_at: Mapping[Any, float],
    remaining: Iterable[Any],
    stall_s: float = STALL_S,
) -> list[Any]:
    """The partitions of ``remaining`` with nothing received, and not read again, for
    ``stall_s`` seconds; times before the recovery started do not count."""
    found = []
    for tp in remaining:
        if quiet_for(now, started_at, received_at, reread_at, tp) >= stall_s:
            found.append(tp)
    return found


def reread_offsets(active_offsets: Mapping[Any, int], tps: Iterable[Any]) -> dict[Any, int]:
    """Where recovery seeks each partition: the last offset applied, or 0 when none was
    (Faust's ``-1``), as ``Recovery._seek_offsets`` does."""
    return {tp: max(0, active_offsets.get(tp, -1)) for tp in tps}


async def check(recovery: Any, now: float) -> dict[Any, int]:
    """Seek the stalled partitions of ``recovery`` (Faust's ``Recovery``) to where its
    recovery would start them; returns what was sought.

    Nothing is awaited between reading the offsets and queueing the seek on the
    consumer thread, whose calls run in order: a rebalance that comes later queues its
    own recovery's seeks after this one, so they win; one that came earlier has
    started another recovery, and nothing is sought.
    """
    started_at = recovery._recovery_started_at
    if not recovery.in_recovery or started_at is None:
        return {}
    remaining = [tp for tp in recovery.active_stats() if tp in recovery.active_tps]
    reread_at: dict[Any, float] = recovery.__dict__.setdefault("_zoneapp_reread_at", {})
    received = recovery._active_events_received_at
    tps = stalled(now, started_at, received, reread_at, remaining)
    if not tps:
        return {}
    offsets = reread_offsets(recovery.active_offsets, tps)
    quiet = {tp: quiet_for(now, started_at, received, reread_at, tp) for tp in offsets}
    consumer = recovery.app.consumer
    try:
        await consumer.seek_wait(offsets)
    except Exception as exc:  # a rebalance took the partitions away: the next one seeks
        log.warning("recovery: reading again failed (%s); trying at the next check", exc)
        return {}
    for tp, offset in sorted(offsets.items()):
        reread_at[tp] = now
        log.warning(
            "recovery of %s[%s] had received nothing for %.0f s (last offset %s); read again "
            "from offset %d",
            tp.topic, tp.partition, quiet[tp], recovery.active_highwaters.get(tp), offset,
        )  # fmt: skip
    return offsets


def install_recovery_watch(app: faust.App) -> None:
    """Run the check as a service of ``app``."""

    @app.service
    class RecoveryWatch(Service):
        """Reads stalled changelog partitions again during recovery."""

        async def on_start(self) -> None:
            log.info(
                "recovery watch: a changelog partition that receives nothing for %g s "
                "during recovery is read again", STALL_S,
            )  # fmt: skip

        @Service.task
        async def _watch(self) -> None:
            async for _ in self.itertimer(CHECK_S, name="zoneapp.recovery_watch"):
                await check(app.tables.recovery, time.monotonic())  # type: ignore[attr-defined]
