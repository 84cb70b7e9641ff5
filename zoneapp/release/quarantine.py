"""Quarantined originals: read back from a zone's quarantine topic, by violation id.

The guard writes the original record (key, value, headers, timestamp) to the source
zone's quarantine topic with ``zoneapp-violation-id`` and the source's topic, partition
and offset in its headers (``zoneapp.core.violations.quarantine_headers``). A release
rebuilds the original :class:`RawRecord` from them: same source place (so the released
output's lineage names the original source record, and ``reconcile`` can tell it), the
producer's own headers (the ``zoneapp-*`` ones of the quarantine hop are dropped, as the
sanitizer drops them anyway).

:class:`KafkaQuarantine` reads the quarantine topic from its start to the highwater of its
fetch responses (tansu's ``ListOffsets(latest)`` is wrong after multi-record batches),
keeping only the records asked for: a release is rare and human-paced, and the topic's
retention bounds the read. :class:`MemoryQuarantine` holds records for in-process tests.

Anyone who may produce to a quarantine topic could write a forged record under a known
violation id (ids are listed to analysts), in another partition, read first. So every
copy under an id is read, and an id is only answered when all its copies are the same
record (key, value, headers, timestamp, source place, boundary: a guard's retry writes
the same one twice); copies that differ answer nothing for that id (:func:`pick`), and
the service checks the copy's boundary and source place against the violation's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from zoneapp.core.sanitizer import LINEAGE_PREFIX, RawRecord

log = logging.getLogger(__name__)

VIOLATION_HEADER = "zoneapp-violation-id"


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    violation_id: str
    boundary: str
    #: The original record, at its source place.
    record: RawRecord
    #: Where the quarantined copy is: (topic, partition, offset).
    location: tuple[str, int, int]

    def __repr__(self) -> str:  # never the payload
        return f"QuarantinedRecord({self.violation_id}, {self.record!r})"


def original(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    timestamp_ms: int | None,
) -> QuarantinedRecord | None:
    """The original of one quarantine-topic record; None when its headers do not name one."""
    lineage: dict[str, str] = {}
    for name, raw in headers:
        if name.lower().startswith(LINEAGE_PREFIX):
            lineage[name.lower()] = bytes(raw or b"").decode("utf-8", "replace")
    try:
        record = RawRecord(
            topic=lineage["zoneapp-source-topic"],
            partition=int(lineage["zoneapp-source-partition"]),
            offset=int(lineage["zoneapp-source-offset"]),
            key=key,
            value=value,
            headers=[(k, v) for k, v in headers if not k.lower().startswith(LINEAGE_PREFIX)],
            timestamp_ms=timestamp_ms,
        )
        return QuarantinedRecord(
            lineage[VIOLATION_HEADER],
            lineage["zoneapp-boundary"],
            record,
            (topic, partition, offset),
        )
    except (KeyError, ValueError):
        return None


def pick(copies: Sequence[QuarantinedRecord]) -> QuarantinedRecord | None:
    """The one record all ``copies`` of a violation id are; None when they differ."""
    if not copies:
        return None
    first = copies[0]

    def same(c: QuarantinedRecord) -> bool:
        a, b = c.record, first.record
        return c.boundary == first.boundary and (
            a.topic,
            a.partition,
            a.offset,
            a.key,
            a.value,
            list(a.headers),
            a.timestamp_ms,
        ) == (b.topic, b.partition, b.offset, b.key, b.value, list(b.headers), b.timestamp_ms)

    if all(same(c) for c in copies[1:]):
        return first
    log.warning("quarantine: copies under violation id %s differ; none is used", first.violation_id)
    return None


def picked(copies: dict[str, list[QuarantinedRecord]]) -> dict[str, QuarantinedRecord]:
    out = {}
    for vid, found in copies.items():
        one = pick(found)
        if one is not None:
            out[vid] = one
    return out


class QuarantineSource(Protocol):
    async def find(self, topic: str, violation_ids: Iterable[str]) -> dict[str, QuarantinedRecord]:
        """The originals of ``violation_ids`` still in ``topic``, by violation id."""
        ...


@dataclass
class MemoryQuarantine:
    """Quarantine topics in memory: (topic, key, value, headers, timestamp) appended."""

    topics: dict[
        str, list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int | None]]
    ] = field(default_factory=dict)

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        timestamp_ms: int | None = None,
    ) -> None:
        self.topics.setdefault(topic, []).append((key, value, headers, timestamp_ms))

    async def find(self, topic: str, violation_ids: Iterable[str]) -> dict[str, QuarantinedRecord]:
        wanted = set(violation_ids)
        found: dict[str, list[QuarantinedRecord]] = {}
        for offset, (key, value, headers, ts) in enumerate(self.topics.get(topic, [])):
            rec = original(topic, 0, offset, key, value, headers, ts)
            if rec is not None and rec.violation_id in wanted:
                found.setdefault(rec.violation_id, []).append(rec)
        return picked(found)


class KafkaQuarantine:
    """Reads a quarantine topic with a plain aiokafka consumer (the worker's settings)."""

    def __init__(self, settings: Any, timeout: float = 120.0) -> None:
        self.settings = settings
        self.timeout = timeout

    async def _partitions(self, topic: str) -> int:
        """The topic's partition count, from the admin API (a consumer with no subscription
        knows no topic's partitions on real Kafka; tansu lists them all)."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.broker_urls(),
            client_id="zoneapp-release-admin",
            **self.settings.security.aiokafka_kwargs(),
        )
        await admin.start()
        try:
            described = await admin.describe_topics([topic])
        finally:
            await admin.close()
        return sum(len(t["partitions"]) for t in described if t.get("error_code") == 0)

    async def find(self, topic: str, violation_ids: Iterable[str]) -> dict[str, QuarantinedRecord]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        wanted = set(violation_ids)
        found: dict[str, list[QuarantinedRecord]] = {}
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.broker_urls(),
            group_id=None,
            enable_auto_commit=False,
            client_id="zoneapp-release",
            **self.settings.security.aiokafka_kwargs(),
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(await self._partitions(topic))]
            if not tps:
                return {}
            consumer.assign(tps)
            begin = await consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, begin[tp])
            todo = set(tps)
            deadline = time.monotonic() + self.timeout
            while todo:  # to the end: every copy of an id counts (module docstring)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} took too long")
                batches = await consumer.getmany(*todo, timeout_ms=1000)
                for tp, records in batches.items():
                    for r in records:
                        rec = original(
                            tp.topic, tp.partition, r.offset, r.key, r.value,
                            list(r.headers), r.timestamp,
                        )  # fmt: skip
                        if rec is not None and rec.violation_id in wanted:
                            found.setdefault(rec.violation_id, []).append(rec)
                for tp in list(todo):
                    end = consumer.highwater(tp)
                    if end is not None and await consumer.position(tp) >= end:
                        todo.discard(tp)
        finally:
            await consumer.stop()
        return picked(found)
