"""Per-record cost of tracing, in process: ``.venv/bin/python -m tests.unit.tracing.overhead``.

Runs ``BoundaryGuard.handle`` (the real sanitizer, in-memory keys, vault and sink) on
batches of 500 realistic payment records (half with a producer ``traceparent``), with:

- ``none``: no tracing code at all (a stub that writes no headers) — the baseline;
- ``off``: the default without an OTLP endpoint — propagation only, no spans;
- ``on``: spans recorded and exported through the real BatchSpanProcessor to an
  exporter that encodes OTLP protobuf and discards it (the CPU an export costs);
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

from zoneapp.guard import BoundaryGuard
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.policy import load_policy
from zoneapp.sanitizer import RawRecord
from zoneapp.tracing import BatchTrace, BoundaryTracer, RecordTrace
from zoneapp.vault import MemoryTokenVault

from ..pipeline.records import payment, raw
from .helpers import EXAMPLE, TRACEPARENT, MemorySink

BATCH = 500
ROUNDS = 12


class EncodingExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


class NoTracing(BatchTrace):
    __slots__ = ()

    def output(self, index: int, outcome: Any) -> RecordTrace:
        return RecordTrace("", [])


class NoTracer(BoundaryTracer):
    def batch(self, records: Sequence[RawRecord]) -> BatchTrace:
        return NoTracing(records, None)


async def measure(label: str, make_tracer: Any) -> float:
    zones = ("restricted", "confidential", "internal", "public")
    provider = MemoryKeyProvider()
    await provider.provision(zones)
    await provider.open(zones)
    policy = load_policy(EXAMPLE)
    boundary = policy.boundary("payments-to-confidential")
    guard = BoundaryGuard(
        policy,
        boundary,
        KeyRing(provider, zones),
        MemoryTokenVault(),
        MemorySink(),  # type: ignore[arg-type]
        tracer=make_tracer(policy, boundary),
    )
    batches = [
        [
            raw(
                payment(payment_id=f"p{r}-{i}"),
                offset=i,
                headers=[("content-type", b"application/json")]
                + ([("traceparent", TRACEPARENT)] if i % 2 else []),
            )
            for i in range(BATCH)
        ]
        for r in range(ROUNDS)
    ]
    await guard.handle(batches[0])  # warm-up: keys, caches
    per_record = []
    for batch in batches[1:]:
        guard.sink.sent.clear()  # type: ignore[attr-defined]
        started = time.perf_counter()
        await guard.handle(batch)
        per_record.append((time.perf_counter() - started) / BATCH * 1e6)
    await provider.close()
    return statistics.median(per_record)


async def main() -> None:
    exporters: list[tuple[TracerProvider, EncodingExporter]] = []

    def sdk(sampler: Any = None) -> Any:
        def make(policy: Any, boundary: Any) -> BoundaryTracer:
            exporter = EncodingExporter()
            provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
            provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 16))
            exporters.append((provider, exporter))
            return BoundaryTracer(policy, boundary, provider.get_tracer("bench"))

        return make

    results = {}
    for label, make in (
        ("none", NoTracer),
        ("off", BoundaryTracer),
        ("on", sdk()),
        ("on, sampled out", sdk(ALWAYS_OFF)),
    ):
        results[label] = await measure(label, make)
        for provider, _ in exporters:
            provider.shutdown()  # includes the rest of the export (encoding) time
    base = results["none"]
    print(f"per record, median of {ROUNDS - 1} batches of {BATCH} (payments-to-confidential):")
    for label, us in results.items():
        print(f"  {label:16s} {us:7.1f} µs   (+{us - base:5.1f} µs, {us / base - 1:+.1%})")


if __name__ == "__main__":
    asyncio.run(main())
