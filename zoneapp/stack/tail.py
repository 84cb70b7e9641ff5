"""``python -m zoneapp.stack tail TOPIC``: print a topic's records and follow new ones.

The usual tool for this, Debian's ``kcat``, fails at the ApiVersion request against
tansu, so the stack brings its own: a plain aiokafka consumer without a group (it
commits nothing, so it cannot disturb the worker), assigned every partition of the
topic. Each record is printed with its partition, offset, timestamp, key, headers
and pretty JSON value, made inert for the terminal (``watch.render_example``).

Decisions:

* **From the beginning** by default (like ``kcat -C``): the stack's topics live in
  memory for one run, and the record you look for (an audit event, a violation) is
  usually already there. ``--from end`` prints only records that arrive later.
  On tansu the end offset is only approximate (it answers ListOffsets with the last
  batch's base offset + 1), so ``--from end`` may skip the rest of that last batch,
  which are old records anyway.
* **Caught up** (for ``--no-follow``) means every partition's position reached the
  highwater of the latest fetch response, which tansu reports correctly.
* **Unknown topics are refused** before anything subscribes: tansu creates any topic
  a client asks metadata for, so tailing a typo would create it.
* The broker comes from ``--broker``, or from ``<workdir>/stack.json``, which a
  running stack writes (``make run`` uses ``.zoneapp``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from zoneapp.stack.embedded import STATE_FILE
from zoneapp.stack.kafka import partition_counts
from zoneapp.stack.process import StackError
from zoneapp.stack.watch import Example, render_example

__all__ = ["broker_of_workdir", "tail_topic"]


def broker_of_workdir(workdir: Path) -> str:
    """``host:port`` of the stack running in ``workdir``; StackError if none is."""
    state = workdir / STATE_FILE
    try:
        broker = json.loads(state.read_text(encoding="utf-8"))["broker"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StackError(
            f"no running stack in {workdir} (no readable {state}); start one with `make run` "
            "or pass --broker HOST:PORT"
        ) from None
    if not isinstance(broker, str) or not broker:
        raise StackError(f"{state} names no broker")
    return broker


async def tail_topic(
    bootstrap: str,
    topic: str,
    *,
    follow: bool = True,
    from_end: bool = False,
    max_records: int | None = None,
    out: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> int:
    """Print ``topic``'s records through ``out``; returns how many were printed.

    Stops after ``max_records``, when ``stop`` is set, or (``follow=False``) once
    caught up with every partition.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest" if from_end else "earliest",
        client_id="zoneapp-stack-tail",
        request_timeout_ms=10_000,
    )
    stop = stop or asyncio.Event()
    try:
        await consumer.start()
    except Exception as exc:
        await consumer.stop()
        raise StackError(
            f"cannot reach the broker at {bootstrap} ({type(exc).__name__}); is the stack running?"
        ) from None
    printed = 0
    try:
        existing = await consumer.topics()  # all topics: this request creates none
        if topic not in existing:
            names = ", ".join(sorted(t for t in existing if not t.startswith("__"))) or "none"
            raise StackError(f"no topic {topic!r} on {bootstrap}; topics: {names}")
        # From the admin API, not the consumer's metadata cache: a consumer without
        # subscriptions has asked real Kafka about no topic yet (tansu lists them all).
        count = (await partition_counts(bootstrap, [topic])).get(topic, 0)
        partitions = list(range(count))
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        if from_end:
            await consumer.seek_to_end(*assigned)
        else:
            await consumer.seek_to_beginning(*assigned)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            records = [r for tp in sorted(batches) for r in batches[tp]]
            for record in sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset)):
                out(render_example(Example.of(record), max_chars=None))
                printed += 1
                if max_records is not None and printed >= max_records:
                    return printed
            if not follow and await _caught_up(consumer, assigned):
                return printed
    finally:
        await consumer.stop()
    return printed


async def _caught_up(consumer: AIOKafkaConsumer, assigned: list[TopicPartition]) -> bool:
    for tp in assigned:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True
