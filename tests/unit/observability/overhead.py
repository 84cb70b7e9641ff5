"""Per-record cost of tracing, in process: ``python -m tests.unit.observability.overhead``.

Runs ``BoundaryGuard.handle`` (the real sanitizer, in-memory keys, vault and sink) on
batches of 500 realistic payment records (half with a producer ``traceparent``), with:

- ``none``: no observer (the guard's default: a fresh random ``traceparent``, no
  timing) — the baseline;
- ``off``: the worker without an OTLP endpoint — the context observer: propagation
  only, no spans;
- ``on``: spans recorded and exported through the real BatchSpanProcessor to an
  exporter that encodes OTLP protobuf and discards it (the CPU an export costs; each
  batch is flushed before its time is taken, so the encoding is included);
- ``on, sampled out``: the SDK with ``always_off`` (spans created, not recorded).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from tests.records import payment, raw
from zoneapp.core.sanitizer import RawRecord
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.observability.context import ContextObserver
from zoneapp.observability.spans import SpanObserver
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.observer import BoundaryObserver
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import load_policy
from zoneapp.vault import MemoryTokenVault

from .helpers import EXAMPLE, TRACEPARENT

BATCH = 500
ROUNDS = 20


class EncodingExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def main() -> None:
    zones = ("restricted", "confidential", "internal", "public")
    keys = MemoryKeyProvider()
    await keys.provision(zones)
    await keys.open(zones)
    policy = load_policy(EXAMPLE)
    boundary = policy.boundary("payments-to-confidential")
    providers: list[TracerProvider] = []

    def sdk(sampler: Any = None) -> BoundaryObserver:
        provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(EncodingExporter(), max_queue_size=1 << 16))
        providers.append(provider)
        return SpanObserver(policy, boundary, provider.get_tracer("bench"))

    observers: dict[str, BoundaryObserver | None] = {
        "none": None,
        "off": ContextObserver(policy, boundary),
        "on": sdk(),
        "on, sampled out": sdk(ALWAYS_OFF),
    }
    guards = {
        label: BoundaryGuard(
            policy,
            boundary,
            KeyRing(keys, zones),
            MemoryTokenVault(),
            MemorySink(),  # type: ignore[arg-type]
            observer=observer,
        )
        for label, observer in observers.items()
    }

    def batch(n: int) -> list[RawRecord]:
        return [
            raw(
                payment(payment_id=f"p{n}-{i}"),
                offset=i,
                headers=[("content-type", b"application/json")]
                + ([("traceparent", TRACEPARENT)] if i % 2 else []),
            )
            for i in range(BATCH)
        ]

    timings: dict[str, list[float]] = {label: [] for label in guards}
    for n in range(ROUNDS + 1):  # rounds alternate the modes; round 0 warms up
        for label, guard in guards.items():
            records = batch(n)
            guard.sink.sent.clear()  # type: ignore[attr-defined]
            started = time.perf_counter()
            await guard.handle(records)
            if label.startswith("on"):  # include the export (encoding) of this batch
                providers[0 if label == "on" else 1].force_flush()
            if n:
                timings[label].append((time.perf_counter() - started) / BATCH * 1e6)
    for provider in providers:
        provider.shutdown()
    await keys.close()
    base = statistics.median(timings["none"])
    print(f"per record, median of {ROUNDS} batches of {BATCH} (payments-to-confidential):")
    for label, values in timings.items():
        us = statistics.median(values)
        print(f"  {label:16s} {us:7.1f} µs   (+{us - base:5.1f} µs, {us / base - 1:+.1%})")


if __name__ == "__main__":
    asyncio.run(main())
