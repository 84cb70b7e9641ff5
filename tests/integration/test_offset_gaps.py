"""A worker resuming inside a multi-record batch loses nothing (issue 10, item 1).

Two batches of 40 payment records are produced to one partition the way batching clients
write them, and the workers' group is committed at offset 20, inside the first batch:
what a worker killed mid-batch leaves behind. Measured here (tansu 0.6.0), a plain fetch
at 20 is served from 20, so the rewind of agents/offset_gaps.py may stay idle: this test
pins down the outcome a resumed worker must have either way, exactly offsets 20..79
handled and no gap committed. The rewind's decisions are unit-tested with the records a
skipping broker serves (tests/unit/agents/test_offset_gaps.py).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tests.records import payment
from zoneapp.ops.reconcile import Window, reconcile
from zoneapp.policy import load_policy
from zoneapp.settings import Settings
from zoneapp.stack import EmbeddedStack

from .conftest import spawn_worker
from .web.conftest import wait_for

pytestmark = pytest.mark.integration

APP_ID = "zoneapp-offset-gaps"
SOURCE = TopicPartition("restricted.payments", 0)
BATCH = 40
RESUME_AT = 20


async def produce_two_batches(stack: EmbeddedStack) -> list[int]:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, linger_ms=500, max_batch_size=1 << 20, acks="all"
    )
    await producer.start()
    offsets: list[int] = []
    try:
        for batch in range(2):
            futures = [
                await producer.send(
                    SOURCE.topic,
                    orjson.dumps(payment(payment_id=f"pay_{batch}_{i}", notes="no card")),
                    partition=SOURCE.partition,
                )
                for i in range(BATCH)
            ]
            await producer.flush()
            offsets += [(await f).offset for f in futures]
    finally:
        await producer.stop()
    return offsets


async def commit_inside_the_first_batch(stack: EmbeddedStack) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap, group_id=APP_ID, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([SOURCE])
        await consumer.commit({SOURCE: OffsetAndMetadata(RESUME_AT, "")})
    finally:
        await consumer.stop()


def test_a_worker_resuming_inside_a_batch_rereads_it(
    private_stack: EmbeddedStack, tmp_path: Path
) -> None:
    stack = private_stack
    offsets = asyncio.run(produce_two_batches(stack))
    assert offsets == list(range(2 * BATCH))
    asyncio.run(commit_inside_the_first_batch(stack))

    worker = spawn_worker(stack, tmp_path, "resumed", {"ZONEAPP_APP_ID": APP_ID})
    settings = Settings.from_env({**os.environ, **stack.env(), "ZONEAPP_APP_ID": APP_ID})
    policy = load_policy(settings.policy_path)

    def handled() -> Any:
        ledger = asyncio.run(
            reconcile(
                policy, settings, Window(first_offset=0), boundaries=["payments-to-confidential"]
            )
        )
        row = ledger.partitions[("payments-to-confidential", SOURCE.topic, SOURCE.partition)]
        outputs = set(row.forwarded) | set(row.quarantined)
        assert row.committed == 2 * BATCH, row.summary()
        return row if outputs else None

    row = wait_for(handled, 120, "the worker to commit both batches")
    outputs = sorted(set(row.forwarded) | set(row.quarantined))
    assert outputs == list(range(RESUME_AT, 2 * BATCH)), row.summary()
    assert row.missing == list(range(RESUME_AT))  # committed past by the test, not the worker
    assert row.duplicated == 0
    text = worker.log_path.read_text(errors="replace")
    assert "will be committed as skipped" not in text
