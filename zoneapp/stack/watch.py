"""A live summary of what crossed the boundaries, for ``python -m zoneapp.stack run``.

A plain aiokafka consumer without a group reads every policy topic from the
beginning, counts records per topic and keeps the first record of a few topics as
examples. It never commits, so it cannot disturb the worker's consumer group.

``render_example`` is also what ``stack tail`` prints. Record bytes are data from
the topic, so everything printed is made inert for the terminal first: control and
format characters (ESC, C1 controls such as CSI, bidi overrides) are shown as
``\\u....`` escapes and never reach the terminal raw.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from zoneapp.formats import utc_iso

__all__ = ["Example", "TopicGroup", "TopicWatcher", "group_topics", "inert", "render_example"]

EXAMPLE_MAX_CHARS = 2000


@dataclass(frozen=True, slots=True)
class TopicGroup:
    label: str
    topics: tuple[str, ...]


@dataclass(slots=True)
class Example:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    #: The record's timestamp in milliseconds since the epoch, when known.
    timestamp_ms: int | None = None

    @classmethod
    def of(cls, record: Any) -> Example:
        """An aiokafka ConsumerRecord as shown to an operator (watch and tail alike)."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=[(k, bytes(v)) for k, v in record.headers],
            timestamp_ms=record.timestamp,
        )


def group_topics(policy: Any) -> list[TopicGroup]:
    """Topics of a CompiledPolicy grouped as: one group per zone, quarantine, security."""
    topics: list[str] = policy.topics()
    quarantine = sorted({z.quarantine_topic for z in policy.zones.values()} & set(topics))
    special = {*quarantine, policy.security_topic}
    groups: list[TopicGroup] = []
    for zone in policy.zones.values():
        mine = tuple(t for t in topics if t not in special and policy.zone_of_topic(t) is zone)
        if mine:
            groups.append(TopicGroup(zone.name, mine))
    if quarantine:
        groups.append(TopicGroup("quarantine", tuple(quarantine)))
    groups.append(TopicGroup("security", (policy.security_topic,)))
    return groups


def inert(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control/format character escaped (``\\u001b``), for a terminal."""
    out = []
    for ch in text:
        if keep_newlines and ch == "\n":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _text(data: bytes | None) -> str:
    if data is None:
        return "null"
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes, not UTF-8> {data[:80]!r}"
    try:
        # JSON escapes C0 controls inside strings; the newlines left are indentation.
        pretty = json.dumps(json.loads(decoded), indent=2, ensure_ascii=False)
        return inert(pretty, keep_newlines=True)
    except ValueError:
        return inert(decoded)


def render_example(example: Example, *, max_chars: int | None = EXAMPLE_MAX_CHARS) -> str:
    """A readable rendering of one record (key, headers, pretty JSON value), bounded
    to ``max_chars`` of value unless that is None; safe to print to a terminal."""
    headers = ", ".join(
        f"{inert(k)}={inert(v.decode('utf-8', 'replace'))}" for k, v in example.headers
    )
    body = _text(example.value)
    if max_chars is not None and len(body) > max_chars:
        body = body[:max_chars] + "\n  ... (truncated)"
    when = ""
    if example.timestamp_ms is not None and example.timestamp_ms >= 0:
        when = f"  {utc_iso(example.timestamp_ms / 1000)}"
    return (
        f"{inert(example.topic)} [partition {example.partition}, offset {example.offset}]{when}\n"
        f"  key:     {_text(example.key)}\n"
        f"  headers: {headers or '-'}\n"
        f"  value:   " + body.replace("\n", "\n  ")
    )


class TopicWatcher:
    """Counts records per topic from the beginning and keeps the first one of chosen topics."""

    def __init__(
        self,
        bootstrap: str,
        topics: Iterable[str],
        *,
        example_topics: Iterable[str] = (),
        prefer: Callable[[Example], bool] | None = None,
    ) -> None:
        self.topics = sorted(set(topics))
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, Example] = {}
        #: Topics whose example satisfies ``prefer`` (it is not replaced any more).
        self.preferred: set[str] = set()
        self._prefer = prefer
        self._example_topics = set(example_topics)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=10_000,
            fetch_max_bytes=50 * 1024 * 1024,
            client_id="zoneapp-stack-watch",
        )
        self._started = False

    async def start(self) -> None:
        # Only call this after the topics exist: a metadata request would auto-create them.
        await self._consumer.start()
        self._started = True
        self._consumer.subscribe(self.topics)

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def poll(self, timeout: float) -> int:
        """Consume for up to ``timeout`` seconds; returns the number of records seen."""
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return seen
            batches = await self._consumer.getmany(timeout_ms=int(remaining * 1000))
            for tp, records in batches.items():
                self.counts[tp.topic] += len(records)
                seen += len(records)
                if tp.topic in self._example_topics and tp.topic not in self.preferred:
                    for record in records:
                        if self._offer(Example.of(record)):
                            break

    def _offer(self, example: Example) -> bool:
        """Keep the first record, replaced by the first one ``prefer`` likes; True once liked."""
        liked = self._prefer is None or self._prefer(example)
        if liked or example.topic not in self.examples:
            self.examples[example.topic] = example
        if liked:
            self.preferred.add(example.topic)
        return liked

    def summary(self, groups: Iterable[TopicGroup]) -> str:
        """One line per group: ``label  topic=count  topic=count``."""
        lines = []
        for group in groups:
            cells = "  ".join(f"{t}={self.counts.get(t, 0)}" for t in group.topics)
            lines.append(f"  {group.label:<13} {cells}")
        return "\n".join(lines)
