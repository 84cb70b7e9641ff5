"""Records dropped in a rebalance are fetched again, also where nothing was committed.

Faust drops fetched records when a rebalance stops its flow and relies on aiokafka's
``seek_to_committed`` to fetch them again; that call skips partitions committed at 0 or
not at all (agents/reseek.py). Each test drains a partition of the embedded broker the
way Faust's fetcher does (aiokafka's position moves past the records, nothing is
committed), then seeks as the patched driver does after a rebalance.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from zoneapp.agents import fence, reseek

from zoneapp.stack import EmbeddedStack
from zoneapp.stack.kafka import create_topics

pytestmark = pytest.mark.integration

RECORDS = 30


@dataclass
class Conf:
    consumer_auto_offset_reset: str = "earliest"


@dataclass
class Tables:
    changelog_topics: set[str] = field(default_factory=set)


@dataclass
class Topics:
    """Faust's conductor: which topics its agents consume with acks."""

    acking: set[str]

    def acks_enabled_for(self, topic: str) -> bool:
        return topic in self.acking


@dataclass
class App:
    """What of a Faust app the seek reads: its offset reset, changelogs and stream topics."""

    topics: Topics
    conf: Conf = field(default_factory=Conf)
    tables: Tables = field(default_factory=Tables)


@pytest.fixture
def partition(stack: EmbeddedStack) -> Iterator[TopicPartition]:
    """A fresh one-partition topic holding RECORDS records."""
    topic = f"zoneapp-test-reseek-{uuid.uuid4().hex[:8]}"

    async def fill() -> None:
        await create_topics(stack.bootstrap, [topic], partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(RECORDS):
                await producer.send_and_wait(topic, f"record {i}".encode(), partition=0)
        finally:
            await producer.stop()

    asyncio.run(fill())
    yield TopicPartition(topic, 0)


async def drained(stack: EmbeddedStack, tp: TopicPartition, commit: int | None) -> AIOKafkaConsumer:
    """A group consumer whose position is past every record; ``commit`` committed first."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap,
        group_id=f"reseek-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    consumer.assign([tp])
    if commit is not None:
        await consumer.commit({tp: OffsetAndMetadata(commit, "")})
    seen: list[int] = []
    while len(seen) < RECORDS - (commit or 0):
        batch = await consumer.getmany(tp, timeout_ms=2000)
        seen += [r.offset for r in batch.get(tp, [])]
    assert await consumer.position(tp) == RECORDS
    return consumer


async def offsets_after_seek(
    app: App, stack: EmbeddedStack, tp: TopicPartition, commit: int | None
) -> tuple[int, list[int]]:
    """Drain, seek as the patched driver does, and read again: (position, offsets read)."""
    consumer = await drained(stack, tp, commit)
    try:
        await reseek.seek_uncommitted(app, consumer)
        position = await consumer.position(tp)
        again: list[int] = []
        while position < RECORDS and len(again) < RECORDS - position:
            batch = await consumer.getmany(tp, timeout_ms=2000)
            again += [r.offset for r in batch.get(tp, [])]
        return position, again
    finally:
        await consumer.stop()


def test_aiokafka_leaves_a_partition_without_commits_where_it_was(
    stack: EmbeddedStack, partition: TopicPartition
) -> None:
    """The upstream behaviour the patch exists for (if this fails, aiokafka changed)."""

    async def run() -> int:
        consumer = await drained(stack, partition, None)
        try:
            await consumer.seek_to_committed()
            return int(await consumer.position(partition))
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == RECORDS


@pytest.mark.parametrize(("commit", "start"), [(None, 0), (0, 0), (12, 12)])
def test_a_stream_partition_is_read_again_from_its_commit_or_its_start(
    stack: EmbeddedStack, partition: TopicPartition, commit: int | None, start: int
) -> None:
    app = App(Topics({partition.topic}))
    position, again = asyncio.run(offsets_after_seek(app, stack, partition, commit))
    assert position == start
    assert again == list(range(start, RECORDS))


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(lambda t: App(Topics(set())), id="not-a-stream-topic"),
        pytest.param(lambda t: App(Topics({t}), tables=Tables({t})), id="a-table-changelog"),
        pytest.param(lambda t: App(Topics({t}), conf=Conf("latest")), id="offset-reset-latest"),
    ],
)
def test_other_partitions_are_left_where_faust_put_them(
    stack: EmbeddedStack, partition: TopicPartition, app: Callable[[str], App]
) -> None:
    made = app(partition.topic)
    position, again = asyncio.run(offsets_after_seek(made, stack, partition, None))
    assert (position, again) == (RECORDS, [])


def test_the_driver_seeks_through_the_patch_installed_once() -> None:
    from faust.transport.drivers import aiokafka as faust_aiokafka

    reseek.install()
    patched = faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed
    reseek.install()
    assert faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed is patched
    assert patched.__module__ == reseek.__name__


def test_every_seek_supersedes_the_records_fetched_before_it(
    stack: EmbeddedStack, partition: TopicPartition
) -> None:
    """agents/fence.py: a seek of any kind (to an offset, to the committed offset, to the
    beginning) marks what was fetched before it as superseded; a fetch without a seek
    in between is not, and the next fetch starts where the seek put the position."""
    fence.install()

    async def run() -> list[tuple[str, bool, int]]:
        consumer = await drained(stack, partition, 12)
        seeks: dict[str, Callable[[], object] | None] = {
            "none": None,
            "offset": lambda: consumer.seek(partition, 5),
            "committed": consumer.seek_to_committed,
            "beginning": lambda: consumer.seek_to_beginning(partition),
        }
        found = []
        try:
            for name, seek in seeks.items():
                consumer.seek(partition, 20)
                batch = await consumer.getmany(partition, timeout_ms=2000, max_records=3)
                assert [r.offset for r in batch[partition]] == [20, 21, 22]
                stamp = fence.fence_of(consumer._fetcher).stamp(batch)
                if seek is not None:
                    done = seek()
                    if asyncio.iscoroutine(done):
                        await done
                again = await consumer.getmany(partition, timeout_ms=2000, max_records=1)
                superseded = fence.fence_of(consumer._fetcher).superseded(stamp)
                found.append((name, superseded == [partition], again[partition][0].offset))
        finally:
            await consumer.stop()
        return found

    assert asyncio.run(run()) == [
        ("none", False, 23),
        ("offset", True, 5),
        ("committed", True, 12),
        ("beginning", True, 0),
    ]


@dataclass
class Thread:
    """Faust's consumer thread, as the fence's refetch uses it: its aiokafka consumer,
    and ``call_thread`` (here the same loop)."""

    consumer: AIOKafkaConsumer

    def _ensure_consumer(self) -> AIOKafkaConsumer:
        return self.consumer

    async def call_thread(self, fn: Callable[[], Any]) -> Any:
        return await fn()


@dataclass
class FaustConsumer:
    app: App
    _thread: Thread


@pytest.mark.parametrize("sought_between", [False, True], ids=["untouched", "sought-since"])
def test_records_of_a_changelog_batch_not_handed_on_are_fetched_again(
    stack: EmbeddedStack, partition: TopicPartition, sought_between: bool
) -> None:
    """agents/fence.py: when Faust drops the rest of a changelog partition's batch (the
    flow stopped), the partition is sought back to the first record not handed on, and
    the next fetch serves it; a seek that came after the batch was fetched wins."""
    fence.install()

    async def run() -> tuple[int, int]:
        consumer = await drained(stack, partition, 0)
        try:
            consumer.seek(partition, 10)
            batch = await consumer.getmany(partition, timeout_ms=2000, max_records=6)
            fetched = fence.fence_of(consumer._fetcher)
            stamped = fence.Stamped(batch)
            stamped.fence, stamped.stamp = fetched, fetched.stamp(stamped)
            if sought_between:
                consumer.seek(partition, 25)
            app = App(Topics(set()), tables=Tables({partition.topic}))
            handed = {partition: 11}  # 10 and 11 handed on, 12..15 dropped
            await fence._refetch_undelivered(FaustConsumer(app, Thread(consumer)), stamped, handed)
            position = await consumer.position(partition)
            again = await consumer.getmany(partition, timeout_ms=2000, max_records=1)
            return position, again[partition][0].offset
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == ((25, 25) if sought_between else (12, 12))
