"""Shared pieces of the tracing tests: a memory sink, spans in memory, hygiene checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from zoneapp.core.sanitizer import RawRecord
from zoneapp.pipeline.sink import Sent

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "policies" / "ecommerce.yaml"
PRODUCER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01".encode()
#: Output markers of transforms: a token, a keyed hash, a ciphertext must never show.
TOKEN_MARKERS = ["tok_", "h1.", "zenc1.", "zenc2.", "zoneapp:kek", "zoneapp:hmac"]


def memory_tracer(sampler: Sampler | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def headers_of(sent: Sent, name: str) -> list[bytes]:
    return [v for k, v in sent[3] if k.lower() == name]


def as_input(sent: Sent, *, topic: str, offset: int) -> RawRecord:
    """A produced record, as the next boundary consumes it."""
    return RawRecord(topic, 0, offset, sent[1], sent[2], list(sent[3]), 1_763_800_000_000)


def texts_of_span(span: ReadableSpan) -> Iterator[str]:
    """Every string a span exports: name, attribute keys and values, events, links."""
    yield span.name
    for source in (span.attributes or {}, span.resource.attributes):
        yield from _texts(source)
    for event in span.events:
        yield event.name
        yield from _texts(event.attributes or {})
    for link in span.links:
        yield from _texts(link.attributes or {})
    if span.status.description:
        yield span.status.description


def _texts(attributes: Any) -> Iterator[str]:
    for key, value in attributes.items():
        yield str(key)
        if isinstance(value, tuple | list):
            yield from (str(v) for v in value)
        else:
            yield str(value)


def leaves(value: Any) -> Iterator[str]:
    """Every string and number of a JSON document (keys excluded)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, str):
        yield value
