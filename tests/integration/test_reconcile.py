"""``faust -A zoneapp reconcile`` against a live stack (issue 10, item 2).

A real worker sanitizes a demo feed; reconcile, run as an operator runs it, agrees with
what was produced. Then the faults it exists for are made for real on the broker: a
consumer group committed past records nobody handled (what tansu's batch defect does),
and a redelivered output. It names the missing offsets as ranges, counts the duplicate,
and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tests.waiting import wait_for
from zoneapp.stack import EmbeddedStack
from zoneapp.stack.demo import produce_demo

from .conftest import REPO, spawn_worker

pytestmark = pytest.mark.integration

FEED = 120
APP_ID = "zoneapp-reconcile-test"
FORGED = APP_ID + "-committed-past"
SOURCE = "restricted.payments"
FAUST = str(Path(sys.executable).with_name("faust"))


def run_reconcile(
    stack: EmbeddedStack, *args: str, app_id: str = APP_ID
) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, **stack.env(), "ZONEAPP_APP_ID": app_id}
    done = subprocess.run(
        [FAUST, "-A", "zoneapp", "reconcile", "--json", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout)


async def count_source(stack: EmbeddedStack) -> int:
    """How many payment records the demo feed wrote (it also writes user records), read
    to the fetch highwater (tansu's ListOffsets(latest) undercounts)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=None)
    await consumer.start()
    seen = 0
    try:
        tps = [TopicPartition(SOURCE, p) for p in (0, 1)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done: set[TopicPartition] = set()
        while len(done) < len(tps):
            batches = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(records) for records in batches.values())
            for tp in tps:
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    done.add(tp)
        return seen
    finally:
        await consumer.stop()


def payments(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in summary["partitions"] if p["boundary"] == "payments-to-confidential"]


async def commit_past_the_end(stack: EmbeddedStack) -> int:
    """Produce records nobody will handle, and commit past them for a group that has the
    stopped worker's offsets otherwise (tansu keeps a stopped member in the worker's own
    group until its session times out, so the forged commits go to a twin group)."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    ends: dict[TopicPartition, int] = {}
    try:
        for i in range(5):
            meta = await producer.send_and_wait(SOURCE, b'{"unhandled": true}', partition=i % 2)
            tp = TopicPartition(SOURCE, meta.partition)
            ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap, group_id=FORGED, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit({tp: OffsetAndMetadata(end, "") for tp, end in ends.items()})
    finally:
        await consumer.stop()
    return 5


async def redeliver_one_output(stack: EmbeddedStack) -> None:
    """Copy one forwarded record (value and lineage headers) back into its topic."""
    consumer = AIOKafkaConsumer(
        "confidential.payments",
        bootstrap_servers=stack.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 60)
    finally:
        await consumer.stop()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            record.topic, record.value, key=record.key, headers=list(record.headers)
        )
    finally:
        await producer.stop()


def test_reconcile_agrees_with_the_feed_and_names_what_is_missing(
    private_stack: EmbeddedStack, tmp_path: Path
) -> None:
    stack = private_stack
    worker = spawn_worker(stack, tmp_path, "reconciled", {"ZONEAPP_APP_ID": APP_ID})
    sent = asyncio.run(produce_demo(stack.broker_url, rate=0, count=FEED, seed=5))
    assert sent == FEED
    on_topic = asyncio.run(count_source(stack))

    def settled() -> dict[str, Any] | None:
        code, summary = run_reconcile(stack, "--boundary", "payments-to-confidential")
        rows = payments(summary)
        handled = sum(r["forwarded"] + r["quarantined"] for r in rows)
        assert code == 0 and handled == on_topic, (on_topic, rows)
        return summary

    summary = wait_for(settled, 180, "the worker to commit every payment record", interval=0.5)
    rows = payments(summary)
    assert summary["ok"] and summary["missing"] == 0 and summary["duplicated"] == 0
    assert all(r["missing"] == [] for r in rows)
    assert sum(r["source_records"] for r in rows) == on_topic
    # Every quarantine the worker produced is counted (the demo plants violations).
    assert sum(r["quarantined"] for r in rows) > 0 and sum(r["forwarded"] for r in rows) > 0
    before = {(r["topic"], r["partition"]): r["consumed"] for r in rows}

    worker.stop(timeout=30)
    lost = asyncio.run(commit_past_the_end(stack))
    code, broken = run_reconcile(stack, "--boundary", "payments-to-confidential", app_id=FORGED)
    assert code == 1 and not broken["ok"] and broken["missing"] == lost, [
        {k: r[k] for k in ("forwarded", "quarantined", "missing", "source_records")}
        for r in payments(broken)
    ]
    for row in payments(broken):
        _, last = before[(row["topic"], row["partition"])]
        gaps = [tuple(r) for r in row["missing"]]
        assert all(a > last and b >= a for a, b in gaps)  # the new records, as ranges
    assert sum(r["missing_count"] for r in payments(broken)) == lost

    # Restricting the window to what was handled before the fault: OK again.
    handled_end = min(last for _, last in before.values()) + 1
    code, window = run_reconcile(
        stack,
        "--boundary",
        "payments-to-confidential",
        "--offsets",
        f":{handled_end}",
        app_id=FORGED,
    )
    assert code == 0 and window["missing"] == 0

    asyncio.run(redeliver_one_output(stack))
    _, again = run_reconcile(stack, "--boundary", "payments-to-confidential")
    assert again["duplicated"] == 1
