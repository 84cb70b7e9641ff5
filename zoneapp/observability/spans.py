"""Spans: one per record per boundary, one per batch, as an observer of the guard.

Apart from the W3C context it extends (:class:`ContextObserver`) because only this
module needs the OpenTelemetry API, and only when an exporter is configured. It
learns everything from the guard's and sanitizer's hooks (``zoneapp.pipeline.observer``);
nothing is wrapped or patched, and only public OpenTelemetry API is used.

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

Attribute hygiene: names, attributes and events carry boundary/zone/topic names,
partitions, offsets, policy version, verdict, reason and counts per transform and
detector: never a field value, a field path, a key, a token or a key id.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

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
from zoneapp.observability.context import (
    SAMPLED,
    TRACEPARENT,
    TRACESTATE,
    ContextObserver,
    format_traceparent,
    format_tracestate,
)
from zoneapp.pipeline.observer import RecordTrace

if TYPE_CHECKING:
    from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy

_NO_STATE = TraceState()


class SpanObserver(ContextObserver):
    """Records a boundary's spans; one per guard (a guard's batches never overlap).

    Per batch it keeps the batch span, each record's timings (``id(record)`` ->
    [parse start, sanitize ns (both phases), DLP start, DLP end, DLP hits]) and the
    span of the record whose outputs are being sent, to end it with an error if the
    batch fails mid-way.
    """

    __slots__ = (
        "batch_attributes",
        "boundary_name",
        "counts",
        "current",
        "links",
        "record_attributes",
        "record_span_name",
        "span",
        "started_ns",
        "step_span",
        "timings",
        "tracer",
    )

    def __init__(self, policy: CompiledPolicy, boundary: CompiledBoundary, tracer: Tracer) -> None:
        super().__init__(policy, boundary)
        self.tracer = tracer
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
        self.span: Span | None = None
        self.step_span: Span | None = None
        self.current: Span | None = None
        self.links: list[Link] = []
        self.timings: dict[int, list[int]] = {}
        self.counts = [0, 0]
        self.started_ns = 0

    # -- the batch and its shared steps ----------------------------------------------

    def on_batch_start(self, records: Sequence[RawRecord]) -> None:
        self.started_ns = time.time_ns()
        self.span = self.tracer.start_span(
            f"batch {self.boundary_name}",
            context=Context(),
            kind=SpanKind.INTERNAL,
            attributes={**self.batch_attributes, "zoneapp.batch.size": len(records)},
            start_time=self.started_ns,
        )
        self.links = [Link(self.span.get_span_context())]
        self.timings.clear()
        self.counts = [0, 0]
        self.current = None

    def on_step_start(self, name: str, attributes: Mapping[str, int | str]) -> None:
        parent = Context() if self.span is None else set_span_in_context(self.span, Context())
        self.step_span = self.tracer.start_span(name, context=parent, attributes=attributes)

    def on_step_end(self, name: str, error: BaseException | None) -> None:
        span, self.step_span = self.step_span, None
        if span is None:
            return
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def on_batch_end(self, error: BaseException | None) -> None:
        current, self.current = self.current, None
        if current is not None and current.is_recording():
            # A record whose outputs were not all sent (the batch failed mid-way).
            current.set_status(Status(StatusCode.ERROR, "batch not finished"))
            current.end()
        span, self.span = self.span, None
        if span is None:
            return
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.set_attributes(
            {"zoneapp.forwarded": self.counts[0], "zoneapp.quarantined": self.counts[1]}
        )
        span.end()

    # -- timings ---------------------------------------------------------------------

    def on_record_parsed(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        self.timings[id(record)] = [started_ns, ended_ns - started_ns, 0, 0, 0]

    def on_dlp_scanned(self, record: RawRecord, started_ns: int, ended_ns: int, hits: int) -> None:
        entry = self.timings.get(id(record))
        if entry is not None:
            entry[2:] = [started_ns, ended_ns, hits]

    def on_record_sanitized(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        entry = self.timings.get(id(record))
        if entry is not None:
            entry[1] += ended_ns - started_ns

    # -- one record ------------------------------------------------------------------

    def on_record_outcome(self, record: RawRecord, outcome: Outcome) -> RecordTrace | None:
        incoming = self.incoming(record)
        if incoming is None:
            parent = Context()
        else:
            remote = SpanContext(
                incoming.trace_id,
                incoming.span_id,
                is_remote=True,
                trace_flags=TraceFlags(incoming.flags & SAMPLED),
                trace_state=TraceState(list(incoming.tracestate))
                if incoming.tracestate
                else _NO_STATE,
            )
            parent = set_span_in_context(NonRecordingSpan(remote), Context())
        self.counts[0 if isinstance(outcome, Forward) else 1] += 1
        # Attributes after the sampling decision: a record sampled out costs only the span id.
        span = self.tracer.start_span(
            self.record_span_name,
            context=parent,
            kind=SpanKind.CONSUMER,
            links=self.links,
            start_time=self.started_ns or None,
        )
        self.current = span
        if span.is_recording():
            span.set_attributes(self._attributes(record, outcome))
            timing = self.timings.get(id(record))
            if timing is not None:
                self._events(span, timing, outcome)
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
        return RecordTrace(f"{context.trace_id:032x}", headers)

    def on_violation(self, record: RawRecord, violation_id: str) -> None:
        if self.current is not None:
            self.current.set_attribute("zoneapp.violation.id", violation_id)

    def on_record_sent(self, record: RawRecord) -> None:
        current, self.current = self.current, None
        if current is not None:
            current.end()

    @staticmethod
    def _events(span: Span, timing: list[int], outcome: Outcome) -> None:
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
                {"zoneapp.duration_us": (dlp_end - dlp_start) // 1000, "zoneapp.dlp.hits": hits},
                timestamp=dlp_start,
            )

    def _attributes(self, record: RawRecord, outcome: Outcome) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            **self.record_attributes,
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
