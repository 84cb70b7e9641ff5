"""One Faust agent per boundary: consume the higher zone, produce to the lower one.

Records are read as raw bytes (the sanitizer parses them itself, so broken JSON
or non-UTF-8 bytes become violations instead of crashing the stream) and handled
in batches so key preparation and vault writes happen once per batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import faust
from faust.types import EventT

from zoneapp.core.sanitizer import RawRecord
from zoneapp.observability import setup as tracing
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.policies import BoundaryGuards
from zoneapp.policy import CompiledBoundary, CompiledPolicy
from zoneapp.runtime import Runtime

log = logging.getLogger(__name__)

RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class FaustSink:
    """Produces through the app's producer (buffered; flushed before every offset commit).

    Topics are still declared through the app, so they exist with the right
    partition count before the first record is produced.
    """

    def __init__(self, app: faust.App, partitions: int) -> None:
        self.app = app
        self.partitions = partitions
        self._topics: dict[str, Any] = {}

    def topic(self, name: str) -> Any:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = self.app.topic(name, partitions=self.partitions, **RAW)
        return topic

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        timestamp_ms: int | None,
    ) -> None:
        # Straight to the app's producer: the same producer Faust flushes before every
        # offset commit (so at-least-once holds), without Topic.send's per-message
        # bookkeeping, which costs more than the sanitizer's cheaper transforms.
        await self.app.producer.send(
            topic,
            key,
            value,
            None,
            None if timestamp_ms is None else timestamp_ms / 1000.0,
            headers,
        )


def raw_record(event: EventT[Any]) -> RawRecord:
    message = event.message
    headers: Any = message.headers
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    pairs = [(str(k), bytes(v) if v is not None else b"") for k, v in items]
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=pairs,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
    )


def register_boundary_agents(
    app: faust.App,
    runtime: Runtime,
    on_batch: Callable[..., None] | None = None,
    guard_factory: Callable[..., BoundaryGuard] = BoundaryGuard,
) -> dict[str, Any]:
    """Create the agents of every boundary this worker runs; returns them by boundary name.

    ``on_batch(boundary, records, outcomes, seconds)`` is called after each finished batch
    (the per-partition stats tables, zoneapp.tables.stats), with ``delayed=`` (indices of
    the records that waited for the ingress rate limit) when there are any.
    ``guard_factory`` takes :class:`BoundaryGuard`'s arguments; the benchmark passes
    another (bench/fair.py).
    """
    sink = FaustSink(app, runtime.settings.topic_partitions)
    policy = runtime.policy
    agents: dict[str, Any] = {}
    if policy is None:
        return agents
    for boundary in runtime.boundaries:
        # Declare the outputs so they exist with the right partition count.
        sink.topic(boundary.destination)
        sink.topic(boundary.source_zone.quarantine_topic)
        sink.topic(policy.security_topic)
        source = app.topic(*boundary.sources, partitions=runtime.settings.topic_partitions, **RAW)
        agents[boundary.name] = app.agent(source, name=f"zoneapp.boundary.{boundary.name}")(
            _processor(runtime, boundary, sink, on_batch, guard_factory)
        )
    return agents


def _processor(
    runtime: Runtime,
    boundary: CompiledBoundary,
    sink: FaustSink,
    on_batch: Callable[..., None] | None = None,
    guard_factory: Callable[..., BoundaryGuard] = BoundaryGuard,
) -> Any:
    settings = runtime.settings

    def build(policy: CompiledPolicy, compiled: CompiledBoundary) -> BoundaryGuard:
        return guard_factory(
            policy,
            compiled,
            runtime.keyring,
            runtime.vault,
            sink,
            runtime.stats[compiled.name],
            max_backoff=settings.retry_max_backoff,
            open_keys=runtime.open_keys,
            # Tracing is the guard's observer (spans, or W3C context only), per OTEL_*.
            observer=tracing.current().observer(policy, compiled),
        )

    # The guard of whichever policy generation is active when a batch starts (hot
    # reload: zoneapp.pipeline.policies); a candidate policy is shadowed beside it.
    guards = BoundaryGuards(runtime.policies, boundary.name, build)

    async def process(stream: faust.StreamT[bytes]) -> None:
        async for events in cast(faust.Stream[bytes], stream).take_events(
            settings.batch_size, within=settings.batch_within
        ):
            started = time.perf_counter()
            records = [raw_record(e) for e in events]
            try:
                outcomes = await guards.handle(records)
            except BaseException:
                # take_events acks the batch in a `finally`. A batch that did not finish
                # (worker stopping mid-retry) must not be committed: mark its messages as
                # handled without telling the consumer, so their offsets stay uncommitted
                # and the records are consumed again after restart.
                for e in events:
                    e.message.acked = True
                raise
            runtime.on_batch_done()
            if on_batch is not None:
                elapsed = time.perf_counter() - started
                # ``delayed`` only when records waited for the ingress rate limit.
                delayed = guards.last.delayed if guards.last is not None else []
                extra = {"delayed": delayed} if delayed else {}
                on_batch(boundary.name, records, outcomes, elapsed, **extra)

    process.__name__ = f"boundary_{boundary.name.replace('-', '_').replace('.', '_')}"
    return process
