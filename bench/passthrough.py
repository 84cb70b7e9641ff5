"""The baseline: a Faust agent that forwards every record unchanged.

Same settings, the same batching (``take_events``) and the same per-record
sends as a zoneapp boundary, so the ratio measures the sanitizer's cost alone.
Run as ``faust -A bench.passthrough worker`` with BENCH_IN / BENCH_OUT set.
"""

from __future__ import annotations

import os
from typing import Any, cast

import faust

RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}

app = faust.App(
    "bench-passthrough",
    broker=os.environ.get("ZONEAPP_BROKER", "kafka://127.0.0.1:9092"),
    processing_guarantee="at_least_once",
    topic_partitions=int(os.environ.get("ZONEAPP_TOPIC_PARTITIONS", "4")),
    broker_session_timeout=10.0,
    broker_heartbeat_interval=1.0,
    broker_commit_interval=1.0,
    producer_linger=0.01,
    producer_max_batch_size=1_048_576,
    producer_acks=-1,
    web_tables_enabled=False,
    datadir=os.environ.get("ZONEAPP_DATADIR", ".zoneapp/bench-passthrough"),
    store="memory://",
    autodiscover=False,
)
source = app.topic(os.environ.get("BENCH_IN", "bench.in"), **RAW)
destination = app.topic(os.environ.get("BENCH_OUT", "bench.out"), **RAW)
BATCH = int(os.environ.get("ZONEAPP_BATCH_SIZE", "500"))


@app.agent(source)
async def passthrough(stream: faust.StreamT[bytes]) -> None:
    async for events in cast(faust.Stream[bytes], stream).take_events(BATCH, within=0.05):
        for event in events:
            message = event.message
            await destination.send(
                key=message.key,
                value=message.value,
                headers=message.headers,
                timestamp=message.timestamp,
            )
