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
import datetime as dt
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, cast

import faust
import orjson
from faust.exceptions import PartitionsMismatch
from faust.types import TP, EventT

from zoneapp.runtime import Runtime

log = logging.getLogger(__name__)

TABLE_NAME = "zoneapp-violations"
MAX_PAGE = 500


def event_time(event: Mapping[str, Any]) -> float:
    """Epoch seconds of an event's ``timestamp`` (0 when unreadable)."""
    try:
        text = str(event.get("timestamp", "")).replace("Z", "+00:00")
        return dt.datetime.fromisoformat(text).timestamp()
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


class ViolationsTable:
    def __init__(self, app: faust.App, runtime: Runtime) -> None:
        self.app = app
        self.keep = runtime.settings.violations_keep
        self.table: Any = app.Table(
            TABLE_NAME,
            default=None,
            partitions=runtime.settings.topic_partitions,
            key_type=str,  # JSON-serialized: b'"<id>"', the key the guard produces
            help="violation events by id (no values), newest per partition",
        )
        #: partition -> ids oldest first; rebuilt from the table after an assignment.
        self._order: dict[int, deque[str]] = {}
        policy = runtime.policy
        self._destination_zone: dict[str, str] = (
            {b.name: b.destination_zone.name for b in policy.boundaries} if policy else {}
        )

    def _ids_of(self, partition: int) -> deque[str]:
        order = self._order.get(partition)
        if order is None:
            rows = [
                (int(v.get("o", 0)), str(k))
                for k, v in list(self.table.data.items())
                if isinstance(v, dict) and v.get("p") == partition
            ]
            order = self._order[partition] = deque(k for _, k in sorted(rows))
        return order

    def on_event(self, event: EventT[Any]) -> None:
        """Store one event (inside the agent's stream: the changelog follows its partition)."""
        message = event.message
        try:
            body = orjson.loads(message.value or b"")
            vid = body["id"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            log.warning(
                "violations: skipping a non-event at %s[%d]@%d",
                message.topic,
                message.partition,
                message.offset,
            )
            return
        if not isinstance(body, dict) or not isinstance(vid, str):
            return
        order = self._ids_of(message.partition)
        if vid not in self.table.data:
            order.append(vid)
        self.table[vid] = {"event": body, "p": message.partition, "o": message.offset}
        while len(order) > self.keep:
            old = order.popleft()
            if old in self.table.data:
                del self.table[old]

    def on_revoked(self, revoked: Iterable[TP]) -> None:
        name = self.table.changelog_topic.get_topic_name()
        for tp in revoked:
            if tp.topic in (name, self.source_topic):
                self._order.pop(tp.partition, None)

    source_topic = ""

    def get(self, vid: str) -> dict[str, Any] | None:
        """The event, if its partition is active here (standby copies may lag: not served)."""
        row = self.table.data.get(vid)
        if not isinstance(row, dict) or row.get("p") not in self._active_partitions():
            return None
        return cast(dict[str, Any], row["event"])

    def local_query(self, limit: int, **filters: Any) -> list[dict[str, Any]]:
        """Up to ``limit`` matching events of this worker's active partitions, newest first."""
        mine = self._active_partitions()
        found = [
            row["event"]
            for row in list(self.table.data.values())
            if isinstance(row, dict)
            and row.get("p") in mine
            and matches(row["event"], destination_zones=self._destination_zone, **filters)
        ]
        found.sort(key=sort_key, reverse=True)
        return found[:limit]

    def _active_partitions(self) -> set[int]:
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
