"""Observer hooks: how tracing and timing watch a boundary's batch without patching it.

The guard calls these hooks explicitly at each step of its batch loop, and the
sanitizer calls :meth:`~zoneapp.core.sanitizer.ScanObserver.on_dlp_scanned` around
its DLP scan, in the style of Faust's ``SensorDelegate``: synchronous, on the hot
path, never I/O. The default (:data:`NO_OBSERVER`) does nothing. The
implementations (W3C trace context, spans) live in ``zoneapp.observability`` and
are chosen where guards are built (``agents/boundary.py``); this package never
imports them.

Order of the hooks for one batch (one guard's batches never overlap, so an observer
may keep per-batch state)::

    on_batch_start(records)
      on_step_start/on_step_end("keys.prepare")
      on_record_parsed(record, ...)                    each record
      on_step_start/on_step_end("subject_keys.get")    only when subject keys are fetched
      on_dlp_scanned(record, ...)                      from the sanitizer, when it scans
      on_record_sanitized(record, ...)                 each record parsed without a quarantine
      on_step_start/on_step_end("vault.store")         only when tokens are written
      on_record_outcome(record, outcome)               each record, in order, then:
      on_violation(record, violation_id)               for a quarantine
      on_record_sent(record)                           its outputs were handed to the sink
    on_batch_end(error)                                error is None or what the batch raised

Decisions:

- **One hook returns data.** ``on_record_outcome`` returns the trace context
  (:class:`RecordTrace`) the record's outputs carry: the tracing observer continues
  the producer's trace. ``None`` (the default observer) gives a fresh trace: a new
  random trace id, not sampled, so nothing of the producer's trace crosses unless an
  observer that implements the boundary's ``trace:`` policy is installed.
- **A failing observer never drops, delays or leaks a record.** The guard calls its
  observer through :class:`SafeObserver`: an exception (not a ``BaseException`` such
  as a cancellation) is swallowed, and logged with the boundary, hook and exception
  type only, never its message (which may hold a value), once per hook and type. A
  failed ``on_record_outcome`` gives the fresh trace above. The incoming
  ``traceparent``/``tracestate`` are removed from every output either way
  (:func:`with_trace_headers`).
- Hooks get the record object itself (observers key state by ``id(record)``),
  the outcome, and ``time.time_ns()`` timestamps measured by the caller, so an
  observer needs no clock of its own and never wraps a method.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from zoneapp.core.sanitizer import Outcome, RawRecord, ScanObserver

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = frozenset({TRACEPARENT, TRACESTATE})

Headers = list[tuple[str, bytes]]


@dataclass(slots=True)
class RecordTrace:
    """The trace context of one record's outputs: headers to write, the violation's trace id."""

    trace_id: str
    headers: Headers


def fresh_trace() -> RecordTrace:
    """A new W3C trace (version 00, random ids, not sampled): none of the input travels."""
    ids = os.urandom(24).hex()
    trace_id = ids[:32]
    return RecordTrace(trace_id, [(TRACEPARENT, f"00-{trace_id}-{ids[32:]}-00".encode())])


def with_trace_headers(headers: Headers, trace_headers: Sequence[tuple[str, bytes]]) -> Headers:
    """``headers`` without any ``traceparent``/``tracestate`` of its own, plus ours."""
    for name, _ in headers:
        if len(name) in (10, 11) and name.lower() in TRACE_HEADERS:
            out = [(k, v) for k, v in headers if k.lower() not in TRACE_HEADERS]
            break
    else:
        out = list(headers)
    out.extend(trace_headers)
    return out


class BoundaryObserver(ScanObserver, Protocol):
    """What a guard tells its observer; see the module docstring for the order."""

    def on_batch_start(self, records: Sequence[RawRecord]) -> None: ...

    def on_step_start(self, name: str, attributes: Mapping[str, int | str]) -> None:
        """A step the batch's records share (``keys.prepare``, ``vault.store``...)."""

    def on_step_end(self, name: str, error: BaseException | None) -> None: ...

    def on_record_parsed(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        """The sanitizer's first phase ran on ``record`` (also when it quarantined it)."""

    def on_record_sanitized(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        """The sanitizer's second phase (rules, DLP scan) ran on ``record``."""

    def on_record_outcome(self, record: RawRecord, outcome: Outcome) -> RecordTrace | None:
        """The record's final outcome, before its outputs are sent: their trace context."""

    def on_violation(self, record: RawRecord, violation_id: str) -> None: ...

    def on_record_sent(self, record: RawRecord) -> None: ...

    def on_batch_end(self, error: BaseException | None) -> None: ...


class NoObserver:
    """Does nothing: the guard's default, and a base for observers that need few hooks."""

    __slots__ = ()

    def on_batch_start(self, records: Sequence[RawRecord]) -> None:
        pass

    def on_step_start(self, name: str, attributes: Mapping[str, int | str]) -> None:
        pass

    def on_step_end(self, name: str, error: BaseException | None) -> None:
        pass

    def on_record_parsed(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        pass

    def on_dlp_scanned(self, record: RawRecord, started_ns: int, ended_ns: int, hits: int) -> None:
        pass

    def on_record_sanitized(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        pass

    def on_record_outcome(self, record: RawRecord, outcome: Outcome) -> RecordTrace | None:
        return None

    def on_violation(self, record: RawRecord, violation_id: str) -> None:
        pass

    def on_record_sent(self, record: RawRecord) -> None:
        pass

    def on_batch_end(self, error: BaseException | None) -> None:
        pass


NO_OBSERVER: BoundaryObserver = NoObserver()


class SafeObserver:
    """Calls an observer so that its exceptions never reach the batch loop (see above)."""

    __slots__ = ("boundary", "failures", "observer")

    def __init__(self, observer: BoundaryObserver, boundary: str) -> None:
        self.observer = observer
        self.boundary = boundary
        #: Exceptions swallowed, per (hook, exception type): for tests and diagnostics.
        self.failures: dict[tuple[str, str], int] = {}

    def _failed(self, hook: str, exc: Exception) -> None:
        key = (hook, type(exc).__name__)
        seen = self.failures.get(key, 0)
        self.failures[key] = seen + 1
        if not seen:
            # The type only: an exception's message may quote a value.
            log.warning(
                "boundary %s: observer %s.%s raised %s; ignored (the record is unaffected)",
                self.boundary,
                type(self.observer).__name__,
                hook,
                key[1],
            )

    def on_batch_start(self, records: Sequence[RawRecord]) -> None:
        try:
            self.observer.on_batch_start(records)
        except Exception as exc:
            self._failed("on_batch_start", exc)

    def on_step_start(self, name: str, attributes: Mapping[str, int | str]) -> None:
        try:
            self.observer.on_step_start(name, attributes)
        except Exception as exc:
            self._failed("on_step_start", exc)

    def on_step_end(self, name: str, error: BaseException | None) -> None:
        try:
            self.observer.on_step_end(name, error)
        except Exception as exc:
            self._failed("on_step_end", exc)

    def on_record_parsed(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        try:
            self.observer.on_record_parsed(record, started_ns, ended_ns)
        except Exception as exc:
            self._failed("on_record_parsed", exc)

    def on_dlp_scanned(self, record: RawRecord, started_ns: int, ended_ns: int, hits: int) -> None:
        try:
            self.observer.on_dlp_scanned(record, started_ns, ended_ns, hits)
        except Exception as exc:
            self._failed("on_dlp_scanned", exc)

    def on_record_sanitized(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        try:
            self.observer.on_record_sanitized(record, started_ns, ended_ns)
        except Exception as exc:
            self._failed("on_record_sanitized", exc)

    def on_record_outcome(self, record: RawRecord, outcome: Outcome) -> RecordTrace | None:
        try:
            trace = self.observer.on_record_outcome(record, outcome)
        except Exception as exc:
            self._failed("on_record_outcome", exc)
            return None
        if trace is not None and not isinstance(trace, RecordTrace):
            self._failed("on_record_outcome", TypeError())
            return None
        return trace

    def on_violation(self, record: RawRecord, violation_id: str) -> None:
        try:
            self.observer.on_violation(record, violation_id)
        except Exception as exc:
            self._failed("on_violation", exc)

    def on_record_sent(self, record: RawRecord) -> None:
        try:
            self.observer.on_record_sent(record)
        except Exception as exc:
            self._failed("on_record_sent", exc)

    def on_batch_end(self, error: BaseException | None) -> None:
        try:
            self.observer.on_batch_end(error)
        except Exception as exc:
            self._failed("on_batch_end", exc)
