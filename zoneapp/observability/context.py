"""W3C trace context in Kafka headers: read strictly, written fresh, never passed as data.

Apart from spans because it is what crosses a boundary: ``traceparent``/``tracestate``
are read from the consumed record as the boundary's ``trace:`` policy allows, and a
fresh context is written on the forwarded record, the quarantined record and the
violation event (the violation's ``trace_id`` is that context's trace id).
:class:`ContextObserver` does only this (tracing off: no span is created, which
costs about a microsecond per record); :class:`~zoneapp.observability.spans.SpanObserver`
extends it with spans. No OpenTelemetry import here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoneapp.core.sanitizer import Outcome, RawRecord
from zoneapp.pipeline.observer import (
    TRACE_HEADERS,
    TRACEPARENT,
    TRACESTATE,
    NoObserver,
    RecordTrace,
    fresh_trace,
    with_trace_headers,
)
from zoneapp.policy.compiled import TracePolicy

if TYPE_CHECKING:
    from zoneapp.dlp import Scanner
    from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy

__all__ = [
    "MAX_TRACESTATE_CHARS",
    "MAX_TRACESTATE_MEMBERS",
    "SAMPLED",
    "TRACEPARENT",
    "TRACESTATE",
    "TRACE_HEADERS",
    "ContextObserver",
    "Incoming",
    "extract",
    "format_traceparent",
    "format_tracestate",
    "parse_traceparent",
    "parse_tracestate",
    "with_trace_headers",
]

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TS_KEY = re.compile(
    r"[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}"
)
_TS_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
MAX_TRACESTATE_MEMBERS = 32
MAX_TRACESTATE_CHARS = 512
SAMPLED = 0x01


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
    return b"00-%032x-%016x-%02x" % (trace_id, span_id, flags & SAMPLED)


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
        return bool(self.flags & SAMPLED)


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


class ContextObserver(NoObserver):
    """Propagation only: each record's outputs continue its trace under a fresh span id.

    A record without a valid context (or a boundary with ``trace: {continue: false}``)
    gets a new trace id, unsampled, the same on all its outputs.
    """

    __slots__ = ("scanner", "trace_policy")

    def __init__(self, policy: CompiledPolicy, boundary: CompiledBoundary) -> None:
        self.scanner: Scanner | None = policy.scanner
        self.trace_policy: TracePolicy = boundary.trace_policy

    def incoming(self, record: RawRecord) -> Incoming | None:
        """The record's trace context as this boundary's policy lets it cross."""
        if not self.trace_policy.continue_trace:
            return None
        return extract(record.headers, self.scanner, self.trace_policy.tracestate_keys)

    def on_record_outcome(self, record: RawRecord, outcome: Outcome) -> RecordTrace | None:
        incoming = self.incoming(record)
        if incoming is None:
            return fresh_trace()
        # A fresh span id: none of the producer's bytes but the trace id travel on.
        span_id = int.from_bytes(os.urandom(8), "big") or 1
        headers = [(TRACEPARENT, format_traceparent(incoming.trace_id, span_id, incoming.flags))]
        if incoming.tracestate:
            headers.append((TRACESTATE, format_tracestate(incoming.tracestate)))
        return RecordTrace(f"{incoming.trace_id:032x}", headers)
