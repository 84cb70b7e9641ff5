"""The violations table: the value-free events of ``security.violations``, by id.

An agent reads ``security.violations`` (raw bytes, JSON-encoded id as key) into a
Faust ``Table`` keyed by violation id. The guard produces each event with the
default partitioner on its JSON key, and the table is written in the event's
context, so the row lives in the changelog partition that Faust's router computes
for the id: ``table_route`` answers ``GET /violations/{id}`` on the right worker.

Bounded: each partition keeps its newest ``ZONEAPP_VIOLATIONS_KEEP`` events; older
ones are deleted (tombstones in the changelog). Rows hold the event as produced
(violation events never carry values), plus its partition and offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, cast

import faust
import orjson
from faust.exceptions import PartitionsMismatch
from faust.types import TP, EventT

from zoneapp.formats import parse_utc
from zoneapp.policy import CompiledPolicy
from zoneapp.runtime import Runtime

log = logging.getLogger(__name__)

TABLE_NAME = "zoneapp-violations"


def event_time(event: Mapping[str, Any]) -> float:
    """Epoch seconds of an event's ``timestamp`` (0 when unreadable)."""
    try:
        return parse_utc(str(event.get("timestamp", "")))
    except ValueError:
        return 0.0


def sort_key(event: Mapping[str, Any]) -> tuple[str, str]:
    return (str(event.get("timestamp", "")), str(event.get("id", "")))


def matches(
    event: Mapping[str, Any],
    *,
    zone: str | None = None,
    boundary: str | None = None,
    detector: str | None = None,
    since: float | None = None,
    until: float | None = None,
    before: tuple[str, str] | None = None,
    destination_zones: Mapping[str, str] | None = None,
) -> bool:
    """Does the event pass the filters? ``zone`` matches the source or destination zone."""
    if boundary and event.get("boundary") != boundary:
        return False
    if zone:
        source = event.get("source") or {}
        destination = (destination_zones or {}).get(str(event.get("boundary")))
        if source.get("zone") != zone and destination != zone:
            return False
    if detector:
        found = {f.get("detector") for f in event.get("findings") or []} | {event.get("detector")}
        if detector not in found:
            return False
    if since is not None or until is not None:
        when = event_time(event)
        if since is not None and when < since:
            return False
        if until is not None and when >= until:
            return False
    return not (before is not None and sort_key(event) >= before)


class ViolationIndex:
    """The bounded index of violation events by id, without Faust: rows
    ``{id: {"event", "p", "o"}}`` in any mapping, served for the partitions active here.

    A worker keeps the rows in its Faust table (:class:`ViolationsTable`); the in-process
    tests in a dict (``zoneapp.tables.memory.MemoryViolations``): storing, bounding,
    filtering and paging are this class in both.
    """

    def __init__(self, keep: int, policy: CompiledPolicy | None) -> None:
        self.keep = keep
        #: partition -> ids oldest first; rebuilt from the rows after an assignment.
        self._order: dict[int, deque[str]] = {}
        self._destination_zone: dict[str, str] = (
            {b.name: b.destination_zone.name for b in policy.boundaries} if policy else {}
        )

    # -- storage: a worker's Faust table, or a dict ------------------------------------

    def rows(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def put(self, vid: str, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def delete(self, vid: str) -> None:
        raise NotImplementedError

    def active_partitions(self) -> set[int]:
        """Partitions whose rows this process serves (standby copies may lag)."""
        raise NotImplementedError

    def owner(self, vid: str) -> str | None:
        """The web URL of the worker owning ``vid``'s partition; None: this process."""
        return None

    # -- writing -----------------------------------------------------------------------

    def _ids_of(self, partition: int) -> deque[str]:
        order = self._order.get(partition)
        if order is None:
            rows = [
                (int(v.get("o", 0)), str(k))
                for k, v in list(self.rows().items())
                if isinstance(v, dict) and v.get("p") == partition
            ]
            order = self._order[partition] = deque(k for _, k in sorted(rows))
        return order

    def store(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        """Index one event of ``security.violations`` (a non-event is skipped, logged by
        its position only)."""
        try:
            body = orjson.loads(value or b"")
            vid = body["id"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            log.warning("violations: skipping a non-event at %s[%d]@%d", topic, partition, offset)
            return
        if not isinstance(body, dict) or not isinstance(vid, str):
            return
        order = self._ids_of(partition)
        new = vid not in self.rows()
        # Written before it is ordered: a put that raises (the changelog's metadata not
        # known yet; the agent retries) leaves no id in the order twice.
        self.put(vid, {"event": body, "p": partition, "o": offset})
        if new:
            order.append(vid)
        while len(order) > self.keep:
            old = order.popleft()
            if old in self.rows():
                self.delete(old)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the order of partitions this process no longer owns."""
        for partition in partitions:
            self._order.pop(partition, None)

    # -- reading -----------------------------------------------------------------------

    def get(self, vid: str) -> dict[str, Any] | None:
        """The event, if its partition is active here (standby copies may lag: not served)."""
        row = self.rows().get(vid)
        if not isinstance(row, dict) or row.get("p") not in self.active_partitions():
            return None
        return cast(dict[str, Any], row["event"])

    def local_query(self, limit: int, **filters: Any) -> list[dict[str, Any]]:
        """Up to ``limit`` matching events of this worker's active partitions, newest first."""
        mine = self.active_partitions()
        found = [
            row["event"]
            for row in list(self.rows().values())
            if isinstance(row, dict)
            and row.get("p") in mine
            and matches(row["event"], destination_zones=self._destination_zone, **filters)
        ]
        found.sort(key=sort_key, reverse=True)
        return found[:limit]


class ViolationsTable(ViolationIndex):
    """The index in a Faust table, written inside the indexing agent's stream (so the
    changelog follows the event's partition) and routed by Faust's router."""

    def __init__(self, app: faust.App, runtime: Runtime) -> None:
        super().__init__(runtime.settings.violations_keep, runtime.policy)
        self.app = app
        self.table: Any = app.Table(
            TABLE_NAME,
            default=None,
            partitions=runtime.settings.topic_partitions,
            key_type=str,  # JSON-serialized: b'"<id>"', the key the guard produces
            help="violation events by id (no values), newest per partition",
        )

    source_topic = ""

    def rows(self) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self.table.data)

    def put(self, vid: str, row: dict[str, Any]) -> None:
        self.table[vid] = row

    def delete(self, vid: str) -> None:
        del self.table[vid]

    def on_event(self, event: EventT[Any]) -> None:
        """Store one event (inside the agent's stream: the changelog follows its partition)."""
        message = event.message
        self.store(message.topic, message.partition, message.offset, message.value)

    def on_revoked(self, revoked: Iterable[TP]) -> None:
        name = self.table.changelog_topic.get_topic_name()
        self.forget(tp.partition for tp in revoked if tp.topic in (name, self.source_topic))

    def owner(self, vid: str) -> str | None:
        """The worker Faust's router names for ``vid`` (None when it knows none)."""
        try:
            return str(self.app.router.key_store(self.table.name, vid)).rstrip("/")
        except KeyError:
            return None

    def active_partitions(self) -> set[int]:
        name = self.table.changelog_topic.get_topic_name()
        try:
            return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == name}
        except Exception:
            return set()


async def _index(violations: ViolationsTable, event: EventT[Any]) -> None:
    """Index one event; while the consumer's metadata does not know the changelog yet
    (Faust just created it, real Kafka answers before it propagates), wait for the next
    metadata refresh instead of crashing the agent and losing the event from the index."""
    waited = 0.0
    while True:
        try:
            violations.on_event(event)
            return
        except PartitionsMismatch:
            if waited == 0.0:
                log.warning("violations index: waiting for the changelog's metadata")
            await asyncio.sleep(0.5)
            waited += 0.5


def register_violations_table(app: faust.App, runtime: Runtime) -> ViolationsTable | None:
    """The table and the agent that fills it (None without a policy)."""
    policy = runtime.policy
    if policy is None:
        return None
    violations = ViolationsTable(app, runtime)
    violations.source_topic = policy.security_topic
    topic = app.topic(
        policy.security_topic,
        partitions=runtime.settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(topic, name="zoneapp.violations.index")  # type: ignore[untyped-decorator]
    async def index_violations(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await _index(violations, event)

    @app.on_partitions_revoked.connect  # type: ignore[untyped-decorator, arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        violations.on_revoked(revoked)

    return violations
