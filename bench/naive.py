"""Naive Faust: what a user writes to forward a topic, on Faust's defaults.

``faust -A bench.naive worker`` with BENCH_IN / BENCH_OUT set. One agent,
``async for value in stream: await dest.send(value=value)``: every record through
``Topic.send``, key and headers dropped, Faust's own producer settings and fetch
wait. Only what a worker needs to run on the embedded stack is set (group timeouts
for tansu's joins, memory store, no table views).
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ.get("BENCH_APP_ID", "bench-naive"),
    broker=os.environ.get("ZONEAPP_BROKER", "kafka://127.0.0.1:9092"),
    topic_partitions=int(os.environ.get("ZONEAPP_TOPIC_PARTITIONS", "4")),
    broker_session_timeout=10.0,
    broker_heartbeat_interval=1.0,
    web_tables_enabled=False,
    datadir=os.environ.get("ZONEAPP_DATADIR", ".zoneapp/bench-naive"),
    store="memory://",
    autodiscover=False,
)
source = app.topic(os.environ.get("BENCH_IN", "bench.in"), value_type=bytes, value_serializer="raw")
destination = app.topic(
    os.environ.get("BENCH_OUT", "bench.out"), value_type=bytes, value_serializer="raw"
)


@app.agent(source)
async def forward(stream: faust.StreamT[bytes]) -> None:
    async for value in stream:
        await destination.send(value=value)
