"""Span export that never blocks the agents, and counts what it drops.

Apart from the set-up because it imports the OpenTelemetry SDK, which only a worker
with an OTLP endpoint loads (``setup.configure`` imports this module lazily).

Spans go to the SDK's ``BatchSpanProcessor``: a bounded queue that a background thread
exports from; when it is full, new spans are dropped. The SDK keeps that count to
itself, so it is counted here with public API only: :class:`CountingExporter` counts
the spans the processor takes out of its queue, :class:`DropCountingProcessor` (in
front of it) counts those it puts in, against ``OTEL_BSP_MAX_QUEUE_SIZE``, read here
and passed to the SDK's processor so both agree. The count may exceed the real one
by up to one export batch while the exporter thread is between taking a batch out
of the queue and exporting it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.environment_variables import OTEL_BSP_MAX_QUEUE_SIZE
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

log = logging.getLogger(__name__)

#: The SDK's (and the specification's) default for ``OTEL_BSP_MAX_QUEUE_SIZE``.
DEFAULT_MAX_QUEUE_SIZE = 2048
WARN_EVERY_S = 30.0


def queue_size(environ: Mapping[str, str]) -> int:
    """``OTEL_BSP_MAX_QUEUE_SIZE``, or the default when unset or not a positive integer."""
    text = environ.get(OTEL_BSP_MAX_QUEUE_SIZE, "").strip()
    if not text:
        return DEFAULT_MAX_QUEUE_SIZE
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size <= 0:
        log.error(
            "tracing: %s is not a positive integer; using %d",
            OTEL_BSP_MAX_QUEUE_SIZE,
            DEFAULT_MAX_QUEUE_SIZE,
        )
        return DEFAULT_MAX_QUEUE_SIZE
    return size


class CountingExporter(SpanExporter):
    """Passes spans on to ``inner``, counting those the batch processor took from its queue."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.taken = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.taken += len(spans)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class DropCountingProcessor(SpanProcessor):
    """The SDK's ``BatchSpanProcessor`` around ``exporter``, counting the spans it drops."""

    def __init__(self, exporter: SpanExporter, environ: Mapping[str, str] | None = None) -> None:
        self.exporter = exporter
        self.queue_size = queue_size(os.environ if environ is None else environ)
        self.dropped = 0
        self._accepted = 0
        self._warned_at = 0.0
        self._counter = CountingExporter(exporter)
        self._batch = BatchSpanProcessor(self._counter, max_queue_size=self.queue_size)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._batch.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        # The batch processor queues sampled spans only.
        if span.context is not None and span.context.trace_flags.sampled:
            if self._accepted - self._counter.taken >= self.queue_size:
                self._count_drop()
            else:
                self._accepted += 1
        self._batch.on_end(span)

    def _count_drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._warned_at > WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "tracing: span export queue full (%d); %d spans dropped so far",
                self.queue_size,
                self.dropped,
            )

    def shutdown(self) -> None:
        self._batch.shutdown()  # type: ignore[no-untyped-call]  # untyped in the SDK

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)
