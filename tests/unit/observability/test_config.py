"""Set-up from the standard OTEL_* variables; export never blocks the agents."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from zoneapp.observability import setup as tracing
from zoneapp.observability.export import DropCountingProcessor
from zoneapp.observability.setup import Tracing, configure

OTEL_VARS = [
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Tracing]]:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    made: list[Tracing] = []
    yield made
    for t in made:
        t.shutdown(timeout=1.0)


def exporter_of(t: Tracing) -> object:
    assert t.processor is not None
    return t.processor.exporter


def test_off_without_an_endpoint() -> None:
    t = configure()
    assert (
        not t.enabled and t.provider is None and "no OTEL_EXPORTER_OTLP_ENDPOINT" in t.description
    )


def test_off_when_the_sdk_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not configure().enabled
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not configure().enabled


def test_http_by_default(monkeypatch: pytest.MonkeyPatch, clean_env: list[Tracing]) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:secret@collector:4318/base")
    t = configure()
    clean_env.append(t)
    assert t.enabled and isinstance(exporter_of(t), HttpExporter)
    assert t.provider is not None and t.provider.resource.attributes["service.name"] == "zoneapp"
    # The log line names the collector, never its credentials or path.
    assert t.description == "OTLP http/protobuf to http://collector:4318 as zoneapp"


def test_grpc_and_service_name(monkeypatch: pytest.MonkeyPatch, clean_env: list[Tracing]) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://jaeger:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "zoneapp-eu1")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    t = configure()
    clean_env.append(t)
    assert isinstance(exporter_of(t), GrpcExporter)
    assert t.provider is not None
    assert t.provider.resource.attributes["service.name"] == "zoneapp-eu1"
    assert "0.25" in t.provider.sampler.get_description()


def test_unsupported_protocol_turns_export_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with caplog.at_level(logging.ERROR):
        t = configure()
    assert not t.enabled and "http/json" in caplog.text


class Blocking(SpanExporter):
    """An exporter stuck on a dead collector."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.wait(30)


def test_a_full_queue_drops_and_counts_without_blocking(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "32")
    exporter = Blocking()
    processor = DropCountingProcessor(exporter)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    t = Tracing(provider, processor, "test")
    tracer = provider.get_tracer("test")
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="zoneapp.observability.export"):
        for _ in range(1000):
            tracer.start_span("x").end()
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0  # ended spans never wait for the exporter
    assert t.dropped_spans >= 1000 - 64 - 32  # at most a queue and one export batch kept
    assert t.dropped_spans <= 1000 - 64  # counted high by at most the batch being taken
    assert "spans dropped" in caplog.text
    # Shutdown with a dead collector is bounded.
    started = time.perf_counter()
    assert t.shutdown(timeout=0.3) is False
    assert time.perf_counter() - started < 2.0
    exporter.release.set()


def test_nothing_is_counted_as_dropped_when_the_exporter_keeps_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "32")
    exporter = InMemorySpanExporter()
    processor = DropCountingProcessor(exporter)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for _ in range(10):
        for _ in range(50):  # within the queue
            tracer.start_span("x").end()
        assert processor.force_flush()
    assert processor.dropped == 0 and len(exporter.get_finished_spans()) == 500
    provider.shutdown()


async def test_worker_shutdown_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = Blocking()
    processor = DropCountingProcessor(exporter)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    provider.get_tracer("test").start_span("x").end()
    monkeypatch.setattr(tracing, "_current", Tracing(provider, processor, "test"))
    started = time.perf_counter()
    await tracing.shutdown(timeout=0.3)
    assert time.perf_counter() - started < 2.0
    assert tracing._current is None
    exporter.release.set()


def test_current_is_configured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_current", None)
    first = tracing.current()
    assert tracing.current() is first and not first.enabled
