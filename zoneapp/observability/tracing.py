"""OpenTelemetry traces across zones: one span per record per boundary, W3C context in headers.

Span tree (see README, "Tracing")::

    <producer's span>                         (from the consumed record's ``traceparent``)
    └── boundary <name>          CONSUMER     one per record per boundary: starts when the
        │                                     batch is consumed, ends when the record's
        │                                     outputs are handed to the producer
        │   events: sanitize (transforms applied), dlp (scan time, hits)
        │   link:   batch <name>
        └── boundary <next>      CONSUMER     the next boundary, continued from the
                                              ``traceparent`` this one wrote
    batch <name>                 INTERNAL     one per batch, its own trace (shared steps)
    ├── keys.prepare
    ├── subject_keys.get
    └── vault.store

Propagation: ``traceparent``/``tracestate`` are read from the consumed record and
written fresh (never passed through as data) on the forwarded record, the
quarantined record and the violation event; the violation's ``trace_id`` is the
span's trace id.

Export only with an OTLP endpoint in the standard ``OTEL_*`` variables. Without
one (or with ``OTEL_SDK_DISABLED=true``) no span is created: trace context is only
propagated (the producer's ``traceparent`` is continued as is, or a new trace id is
started), which costs about a microsecond per record.

Attribute hygiene: names, attributes and events carry boundary/zone/topic names,
partitions, offsets, policy version, verdict, reason and counts per transform and
detector — never a field value, a field path, a key, a token or a key id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TraceState,
    set_span_in_context,
)

from zoneapp.core.sanitizer import Forward, Outcome, Quarantine, RawRecord
from zoneapp.policy.compiled import TracePolicy

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from zoneapp.core.sanitizer import BoundarySanitizer
    from zoneapp.dlp import Scanner
    from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = frozenset({TRACEPARENT, TRACESTATE})
DEFAULT_SERVICE_NAME = "zoneapp"
TRACER_NAME = "zoneapp"

# -- W3C trace context ---------------------------------------------------------------

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TS_KEY = re.compile(
    r"[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}"
)
_TS_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
MAX_TRACESTATE_MEMBERS = 32
MAX_TRACESTATE_CHARS = 512
_SAMPLED = 0x01
_NO_STATE = TraceState()


def parse_traceparent(value: bytes | str) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) of a valid W3C ``traceparent``, else None.

    Version ``00`` must be exactly 55 characters; a later version may append
    ``-``-separated fields (ignored); ``ff``, all-zero ids and upper case are invalid.
    """
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else bytes(value)
    match = _TRACEPARENT.fullmatch(raw.strip(b" \t"))
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(flags_hex, 16)


def format_traceparent(trace_id: int, span_id: int, flags: int) -> bytes:
    """Always version 00 with only the sampled flag: nothing else of the input travels."""
    return b"00-%032x-%016x-%02x" % (trace_id, span_id, flags & _SAMPLED)


def parse_tracestate(
    values: Sequence[bytes | str], scanner: Scanner | None = None
) -> tuple[tuple[str, str], ...]:
    """The list members of W3C ``tracestate`` header(s), or () when it must be dropped.

    The whole tracestate is dropped when a member is malformed, a key repeats, it has
    more than 32 members or 512 characters, or (``scanner`` given) the DLP scan finds
    anything in it: it is the producer's free text and crosses into a lower zone.
    """
    texts = []
    for value in values:
        try:
            texts.append(value.decode("ascii") if isinstance(value, bytes) else value)
        except UnicodeDecodeError:
            return ()
    text = ",".join(texts)
    if not text.strip(" \t,") or len(text) > MAX_TRACESTATE_CHARS:
        return ()
    members: list[tuple[str, str]] = []
    keys: set[str] = set()
    for member in text.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        key, sep, val = member.partition("=")
        if not sep or key in keys or not _TS_KEY.fullmatch(key) or not _TS_VALUE.fullmatch(val):
            return ()
        keys.add(key)
        members.append((key, val))
    if len(members) > MAX_TRACESTATE_MEMBERS:
        return ()
    if scanner is not None and members and scanner.scan_text(text):
        return ()
    return tuple(members)


def format_tracestate(members: Sequence[tuple[str, str]]) -> bytes:
    return ",".join(f"{k}={v}" for k, v in members).encode("ascii")


@dataclass(frozen=True, slots=True)
class Incoming:
    """The trace context a consumed record carried."""

    trace_id: int
    span_id: int
    flags: int
    tracestate: tuple[tuple[str, str], ...] = ()

    @property
    def sampled(self) -> bool:
        return bool(self.flags & _SAMPLED)


def extract(
    headers: Sequence[tuple[str, bytes]],
    scanner: Scanner | None = None,
    tracestate_keys: Container[str] | None = None,
) -> Incoming | None:
    """The record's W3C context; None when it has none, or more than one ``traceparent``.

    With ``tracestate_keys`` (what a boundary does), only ``tracestate`` members with
    those vendor keys are kept, and each one only if the DLP scan finds nothing in it.
    """
    parent: bytes | None = None
    states: list[bytes] = []
    for name, value in headers:
        if len(name) not in (10, 11):  # cheap pre-filter: len("tracestate"), len("traceparent")
            continue
        lowered = name.lower()
        if lowered == TRACEPARENT:
            if parent is not None:
                return None
            parent = value
        elif lowered == TRACESTATE and value:
            states.append(value)
    if not parent:
        return None
    parsed = parse_traceparent(parent)
    if parsed is None:
        return None
    state = parse_tracestate(states, scanner) if states else ()
    if tracestate_keys is not None and state:
        kept = [(k, v) for k, v in state if k in tracestate_keys]
        if kept and scanner is not None:
            hits = {f.path for f in scanner.scan([(k, f"{k}={v}") for k, v in kept])}
            kept = [(k, v) for k, v in kept if k not in hits]
        state = tuple(kept)
    return Incoming(parsed[0], parsed[1], parsed[2], state)


def with_trace_headers(
    headers: list[tuple[str, bytes]], trace_headers: Sequence[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """``headers`` without any ``traceparent``/``tracestate`` of its own, plus ours."""
    for name, _ in headers:
        if len(name) in (10, 11) and name.lower() in TRACE_HEADERS:
            out = [(k, v) for k, v in headers if k.lower() not in TRACE_HEADERS]
            break
    else:
        out = list(headers)
    out.extend(trace_headers)
    return out


# -- per record, per batch -----------------------------------------------------------


class RecordTrace:
    """The trace of one record's outputs: headers to write and the violation trace id."""

    __slots__ = ("headers", "trace_id")

    def __init__(self, trace_id: str, headers: list[tuple[str, bytes]]) -> None:
        self.trace_id = trace_id
        self.headers = headers

    def violation(self, violation_id: str) -> None:
        """The violation event's id, as a span attribute (nothing without spans)."""

    def end(self) -> None:
        """The record's outputs were handed to the producer."""


class BatchTrace:
    """Propagation only: no spans. Subclassed by the recording variant."""

    __slots__ = ("policy", "records", "scanner")

    def __init__(
        self,
        records: Sequence[RawRecord],
        scanner: Scanner | None,
        policy: TracePolicy | None = None,
    ) -> None:
        self.records = records
        self.scanner = scanner
        self.policy = policy or TracePolicy()

    def incoming(self, record: RawRecord) -> Incoming | None:
        """The record's trace context as this boundary's policy lets it cross."""
        if not self.policy.continue_trace:
            return None
        return extract(record.headers, self.scanner, self.policy.tracestate_keys)

    def step(self, name: str, **attributes: int | str) -> AbstractContextManager[Any]:
        """A shared, per-batch step (key preparation, vault writes)."""
        return nullcontext()

    def output(self, index: int, outcome: Outcome) -> RecordTrace:
        incoming = self.incoming(self.records[index])
        if incoming is None:
            ids = os.urandom(24).hex()
            trace_id = ids[:32]
            return RecordTrace(trace_id, [(TRACEPARENT, f"00-{trace_id}-{ids[32:]}-00".encode())])
        # A fresh span id: none of the producer's bytes but the trace id travel on.
        span_id = int.from_bytes(os.urandom(8), "big") or 1
        headers = [(TRACEPARENT, format_traceparent(incoming.trace_id, span_id, incoming.flags))]
        if incoming.tracestate:
            headers.append((TRACESTATE, format_tracestate(incoming.tracestate)))
        return RecordTrace(f"{incoming.trace_id:032x}", headers)

    def close(self, error: BaseException | None = None) -> None:
        """The batch is done (or failed with ``error``)."""


class _Timer:
    """Times each record's sanitize phases and DLP scan (installed only when tracing is on).

    It stands in for the sanitizer's scanner and wraps its ``parse``/``finish``, so the
    guard's batch loop needs no timing code. ``records`` maps ``id(record)`` to
    [sanitize start, sanitize ns (both phases), DLP start, DLP end, DLP hits]; it is
    cleared at the start of each batch.
    """

    __slots__ = ("dlp", "records", "scanner")

    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner
        self.records: dict[int, list[int]] = {}
        self.dlp = [0, 0, 0]

    def scan(self, items: Any, opaque: Any = ()) -> Any:
        start = time.time_ns()
        result = self.scanner.scan(items, opaque)
        self.dlp = [start, time.time_ns(), len(result)]
        return result

    def scan_text(self, text: str) -> list[str]:
        return self.scanner.scan_text(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scanner, name)

    def wrap(self, sanitizer: BoundarySanitizer) -> None:
        parse, finish = sanitizer.parse, sanitizer.finish
        records = self.records

        def timed_parse(record: RawRecord, *args: Any, **kwargs: Any) -> Any:
            start = time.time_ns()
            try:
                return parse(record, *args, **kwargs)
            finally:
                records[id(record)] = [start, time.time_ns() - start, 0, 0, 0]

        def timed_finish(parsed: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.time_ns()
            self.dlp = [0, 0, 0]
            try:
                return finish(parsed, *args, **kwargs)
            finally:
                entry = records.get(id(parsed.record))
                if entry is not None:
                    entry[1] += time.time_ns() - start
                    entry[2:] = self.dlp

        sanitizer.scanner = cast("Scanner", self)
        sanitizer.parse = timed_parse  # type: ignore[method-assign]
        sanitizer.finish = timed_finish  # type: ignore[method-assign]


class _RecordingRecord(RecordTrace):
    __slots__ = ("span",)

    def __init__(self, span: Span, trace_id: str, headers: list[tuple[str, bytes]]) -> None:
        super().__init__(trace_id, headers)
        self.span = span

    def violation(self, violation_id: str) -> None:
        self.span.set_attribute("zoneapp.violation.id", violation_id)

    def end(self) -> None:
        self.span.end()


class _RecordingBatch(BatchTrace):
    __slots__ = (
        "counts",
        "current",
        "links",
        "owner",
        "span",
        "started_ns",
        "timings",
    )

    def __init__(self, owner: BoundaryTracer, records: Sequence[RawRecord]) -> None:
        super().__init__(records, owner.scanner, owner.trace_policy)
        assert owner.tracer is not None
        self.owner = owner
        self.started_ns = time.time_ns()
        self.span = owner.tracer.start_span(
            f"batch {owner.boundary_name}",
            context=Context(),
            kind=SpanKind.INTERNAL,
            attributes={**owner.batch_attributes, "zoneapp.batch.size": len(records)},
            start_time=self.started_ns,
        )
        self.links = [Link(self.span.get_span_context())]
        self.timings = owner.timer.records if owner.timer is not None else {}
        self.timings.clear()
        self.counts = [0, 0]
        self.current: Span | None = None

    @contextmanager
    def _step(self, name: str, attributes: dict[str, int | str]) -> Iterator[None]:
        tracer = self.owner.tracer
        assert tracer is not None
        span = tracer.start_span(
            name, context=set_span_in_context(self.span, Context()), attributes=attributes
        )
        try:
            yield
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def step(self, name: str, **attributes: int | str) -> AbstractContextManager[Any]:
        return self._step(name, attributes)

    def output(self, index: int, outcome: Outcome) -> RecordTrace:
        owner = self.owner
        record = self.records[index]
        incoming = self.incoming(record)
        if incoming is None:
            parent = Context()
        else:
            remote = SpanContext(
                incoming.trace_id,
                incoming.span_id,
                is_remote=True,
                trace_flags=TraceFlags(incoming.flags & _SAMPLED),
                trace_state=TraceState(list(incoming.tracestate))
                if incoming.tracestate
                else _NO_STATE,
            )
            parent = set_span_in_context(NonRecordingSpan(remote), Context())
        forwarded = isinstance(outcome, Forward)
        self.counts[0 if forwarded else 1] += 1
        assert owner.tracer is not None
        # Attributes after the sampling decision: a record sampled out costs only the span id.
        span = owner.tracer.start_span(
            owner.record_span_name,
            context=parent,
            kind=SpanKind.CONSUMER,
            links=self.links,
            start_time=self.started_ns,
        )
        self.current = span
        if span.is_recording():
            span.set_attributes(self._attributes(record, outcome))
        timing = self.timings.get(id(record))
        if timing is not None and span.is_recording():
            started, took, dlp_start, dlp_end, hits = timing
            span.add_event(
                "sanitize",
                {
                    "zoneapp.duration_us": took // 1000,
                    "zoneapp.transforms": ",".join(sorted(outcome.applied)),
                },
                timestamp=started,
            )
            if dlp_start:
                span.add_event(
                    "dlp",
                    {
                        "zoneapp.duration_us": (dlp_end - dlp_start) // 1000,
                        "zoneapp.dlp.hits": hits,
                    },
                    timestamp=dlp_start,
                )
        if isinstance(outcome, Quarantine) and outcome.reason == "internal_error":
            span.set_status(Status(StatusCode.ERROR, "internal_error"))
        context = span.get_span_context()
        headers = [
            (
                TRACEPARENT,
                format_traceparent(context.trace_id, context.span_id, context.trace_flags),
            )
        ]
        if context.trace_state:
            headers.append((TRACESTATE, format_tracestate(list(context.trace_state.items()))))
        return _RecordingRecord(span, f"{context.trace_id:032x}", headers)

    def _attributes(self, record: RawRecord, outcome: Outcome) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            **self.owner.record_attributes,
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        }
        for verb, count in outcome.applied.items():
            attributes[f"zoneapp.transform.{verb}"] = count
        if isinstance(outcome, Forward):
            attributes["zoneapp.verdict"] = "forwarded"
        else:
            attributes["zoneapp.verdict"] = "quarantined"
            attributes["zoneapp.reason"] = outcome.reason
            for problem in outcome.problems:
                if problem.detector:
                    key = f"zoneapp.dlp.{problem.detector}"
                    attributes[key] = attributes.get(key, 0) + 1
        return attributes

    def close(self, error: BaseException | None = None) -> None:
        current = self.current
        if current is not None and current.is_recording():
            # A record whose outputs were not all sent (the batch failed mid-way).
            current.set_status(Status(StatusCode.ERROR, "batch not finished"))
            current.end()
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self.span.set_attributes(
            {"zoneapp.forwarded": self.counts[0], "zoneapp.quarantined": self.counts[1]}
        )
        self.span.end()


class BoundaryTracer:
    """Tracing for one boundary's guard; without a tracer, propagation only."""

    def __init__(
        self, policy: CompiledPolicy, boundary: CompiledBoundary, tracer: Tracer | None = None
    ) -> None:
        self.tracer = tracer
        self.scanner: Scanner | None = policy.scanner
        self.trace_policy: TracePolicy = boundary.trace_policy
        self.timer: _Timer | None = None
        self.boundary_name = boundary.name
        self.record_span_name = f"boundary {boundary.name}"
        self.batch_attributes: dict[str, str] = {
            "zoneapp.boundary": boundary.name,
            "zoneapp.zone": boundary.source_zone.name,
            "zoneapp.destination.zone": boundary.destination_zone.name,
        }
        # Few attributes on purpose: each costs ~3 µs per record to record and encode.
        self.record_attributes: dict[str, str] = {
            "messaging.system": "kafka",
            **self.batch_attributes,
            "zoneapp.policy.version": policy.version,
        }

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def attach(self, sanitizer: BoundarySanitizer) -> None:
        """Time the sanitizer's phases and DLP scan (only when spans are recorded)."""
        if self.tracer is None or isinstance(sanitizer.scanner, _Timer):
            return
        self.timer = _Timer(sanitizer.scanner)
        self.timer.wrap(sanitizer)

    def batch(self, records: Sequence[RawRecord]) -> BatchTrace:
        if self.tracer is None:
            return BatchTrace(records, self.scanner, self.trace_policy)
        return _RecordingBatch(self, records)


# -- set-up from the OTEL_* environment ---------------------------------------------


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "true"


def _endpoint_for_log(url: str) -> str:
    """scheme://host:port only: no credentials or paths in logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{parts.scheme or 'http'}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<unparsable endpoint>"


class _CountingProcessor:
    """Factory for a BatchSpanProcessor that counts the spans it drops when its queue is full."""

    @staticmethod
    def create(exporter: Any) -> BatchSpanProcessor:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        class CountingBatchSpanProcessor(BatchSpanProcessor):
            dropped = 0
            _warned_at = 0.0

            def on_end(self, span: ReadableSpan) -> None:
                if span.context is not None and span.context.trace_flags.sampled:
                    inner = getattr(self, "_batch_processor", None)
                    queue = getattr(inner, "_queue", None)
                    limit = getattr(inner, "_max_queue_size", None)
                    if queue is not None and limit is not None and len(queue) >= limit:
                        self.dropped += 1
                        now = time.monotonic()
                        if now - self._warned_at > 30.0:
                            self._warned_at = now
                            log.warning(
                                "tracing: span export queue full (%d); %d spans dropped so far",
                                limit,
                                self.dropped,
                            )
                super().on_end(span)

        return CountingBatchSpanProcessor(exporter)


class Tracing:
    """The worker's tracing: an SDK tracer provider with an OTLP exporter, or none."""

    def __init__(
        self,
        provider: TracerProvider | None = None,
        processor: BatchSpanProcessor | None = None,
        description: str = "off",
    ) -> None:
        self.provider = provider
        self.processor = processor
        self.description = description
        self._tracer = None if provider is None else provider.get_tracer(TRACER_NAME)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @property
    def dropped_spans(self) -> int:
        return int(getattr(self.processor, "dropped", 0))

    def boundary(self, policy: CompiledPolicy, boundary: CompiledBoundary) -> BoundaryTracer:
        return BoundaryTracer(policy, boundary, self._tracer)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush and stop the exporter in a daemon thread; never waits more than ``timeout``."""
        thread = self._begin_shutdown()
        if thread is None:
            return True
        thread.join(timeout)
        return self._end_shutdown(thread)

    async def shutdown_async(self, timeout: float = 5.0) -> bool:
        """The same, without blocking the event loop while it waits."""
        thread = self._begin_shutdown()
        if thread is None:
            return True
        deadline = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._end_shutdown(thread)

    def _begin_shutdown(self) -> threading.Thread | None:
        provider = self.provider
        if provider is None:
            return None
        self.provider = None
        thread = threading.Thread(
            target=provider.shutdown, name="zoneapp-otel-shutdown", daemon=True
        )
        thread.start()
        return thread

    def _end_shutdown(self, thread: threading.Thread) -> bool:
        if self.dropped_spans:
            log.warning("tracing: %d spans were dropped (export queue full)", self.dropped_spans)
        return not thread.is_alive()


def _exporter(protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def configure(environ: Mapping[str, str] | None = None) -> Tracing:
    """Tracing as the standard ``OTEL_*`` variables say; off without an OTLP endpoint.

    The SDK itself reads the rest: ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_BSP_*``,
    ``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS``/``TIMEOUT``/``COMPRESSION``/``CERTIFICATE``
    and ``OTEL_RESOURCE_ATTRIBUTES``. A broken configuration turns export off (logged):
    tracing never stops the guard.
    """
    env = os.environ if environ is None else environ
    if _flag(env, "OTEL_SDK_DISABLED"):
        return Tracing(description="off (OTEL_SDK_DISABLED=true); trace context propagated")
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return Tracing(description="off (OTEL_TRACES_EXPORTER=none); trace context propagated")
    endpoint = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ) or ""
    if not endpoint.strip():
        return Tracing(description="off (no OTEL_EXPORTER_OTLP_ENDPOINT); trace context propagated")
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in ("grpc", "http/protobuf"):
        log.error(
            "tracing: OTLP protocol %r is not supported (use grpc or http/protobuf); "
            "spans are not exported",
            protocol,
        )
        return Tracing(description=f"off (unsupported protocol {protocol})")
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider

        resource = Resource.create({})
        name = str(resource.attributes.get(SERVICE_NAME, ""))
        if not name or name.startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        processor = _CountingProcessor.create(_exporter(protocol))
        provider.add_span_processor(processor)
    except Exception as exc:  # a tracing misconfiguration never stops the guard
        log.error("tracing: cannot set up OTLP export (%s); spans are not exported", exc)
        return Tracing(description="off (set-up failed)")
    service = resource.attributes.get(SERVICE_NAME)
    description = f"OTLP {protocol} to {_endpoint_for_log(endpoint.strip())} as {service}"
    return Tracing(provider, processor, description)


_current: Tracing | None = None
_lock = threading.Lock()


def current() -> Tracing:
    """The worker's tracing, configured from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = configure()
            log.info("tracing: %s", _current.description)
        return _current


async def shutdown(timeout: float = 5.0) -> None:
    """Flush spans at worker stop (bounded: never holds the shutdown more than ``timeout``)."""
    global _current
    with _lock:
        tracing, _current = _current, None
    if tracing is not None and not await tracing.shutdown_async(timeout):
        log.warning("tracing: span exporter did not finish within %.0fs", timeout)
