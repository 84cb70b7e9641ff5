"""zoneapp with a timing observer: where a record's time goes, stage by stage.

``faust -A bench.profiled worker`` on the stack's environment, with BENCH_PROFILE
naming the JSON file to write. The worker is zoneapp's own; its guards get
:class:`ProfileObserver` (wrapping the tracing observer they would get anyway)
through the app's ``guard_factory``. The observer only reads the timestamps the
guard and the sanitizer hand to their hooks (zoneapp/pipeline/observer.py):

- parse: ``on_record_parsed`` (bytes to JSON, limits, tenant, subject);
- DLP: ``on_dlp_scanned`` (the scan of every output text);
- serialize: from the end of the scan to the end of ``on_record_sanitized`` (JSON
  encoding of the output and the lineage headers);
- rule walk + transforms: the rest of ``on_record_sanitized``;
- vault + produce: the rest of the batch inside ``handle`` (key preparation, the
  vault write, the trace headers and the sends to the producer);
- framework + consume: the wall time between the first batch's start and the last
  batch's end that is outside ``handle`` (Faust's fetch, events, take_events).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoneapp.core.sanitizer import Outcome, RawRecord
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.observer import NO_OBSERVER, BoundaryObserver, RecordTrace

__all__ = ["STAGES", "ProfileObserver", "per_record_us", "profiled_guard"]

STAGES = (
    "framework+consume",
    "parse",
    "rule walk+transforms",
    "DLP",
    "serialize",
    "vault+produce",
)


class ProfileObserver:
    """Sums each stage's nanoseconds over all batches; forwards every hook to ``inner``."""

    def __init__(self, inner: BoundaryObserver | None = None, out: Path | None = None) -> None:
        self.inner = inner or NO_OBSERVER
        self.out = out
        self.ns = dict.fromkeys(STAGES, 0)
        self.records = 0
        self.batches = 0
        self.first_start: int | None = None
        self.last_end = 0
        self.handle_ns = 0
        self._batch_start = 0
        self._batch_inside = 0
        self._dlp: tuple[int, int] | None = None

    def snapshot(self) -> dict[str, Any]:
        ns = dict(self.ns)
        if self.first_start is not None:
            ns["framework+consume"] = (self.last_end - self.first_start) - self.handle_ns
        return {"records": self.records, "batches": self.batches, "ns": ns}

    # -- hooks ------------------------------------------------------------------------

    def on_batch_start(self, records: Sequence[RawRecord]) -> None:
        self._batch_start = time.time_ns()
        self._batch_inside = 0
        if self.first_start is None:
            self.first_start = self._batch_start
        self.records += len(records)
        self.batches += 1
        self.inner.on_batch_start(records)

    def on_step_start(self, name: str, attributes: Mapping[str, int | str]) -> None:
        self.inner.on_step_start(name, attributes)

    def on_step_end(self, name: str, error: BaseException | None) -> None:
        self.inner.on_step_end(name, error)

    def on_record_parsed(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        self.ns["parse"] += ended_ns - started_ns
        self._batch_inside += ended_ns - started_ns
        self.inner.on_record_parsed(record, started_ns, ended_ns)

    def on_dlp_scanned(self, record: RawRecord, started_ns: int, ended_ns: int, hits: int) -> None:
        self._dlp = (started_ns, ended_ns)
        self.inner.on_dlp_scanned(record, started_ns, ended_ns, hits)

    def on_record_sanitized(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        span = ended_ns - started_ns
        self._batch_inside += span
        dlp, self._dlp = self._dlp, None
        if dlp is not None and started_ns <= dlp[0] <= dlp[1] <= ended_ns:
            scan, after = dlp[1] - dlp[0], ended_ns - dlp[1]
            self.ns["DLP"] += scan
            self.ns["serialize"] += after
            self.ns["rule walk+transforms"] += span - scan - after
        else:
            self.ns["rule walk+transforms"] += span
        self.inner.on_record_sanitized(record, started_ns, ended_ns)

    def on_record_outcome(self, record: RawRecord, outcome: Outcome) -> RecordTrace | None:
        return self.inner.on_record_outcome(record, outcome)

    def on_violation(self, record: RawRecord, violation_id: str) -> None:
        self.inner.on_violation(record, violation_id)

    def on_record_sent(self, record: RawRecord) -> None:
        self.inner.on_record_sent(record)

    def on_batch_end(self, error: BaseException | None) -> None:
        self.inner.on_batch_end(error)
        end = time.time_ns()
        handle = end - self._batch_start
        self.handle_ns += handle
        self.ns["vault+produce"] += handle - self._batch_inside
        self.last_end = end
        if self.out is not None:
            # After the batch's end was taken: the write falls outside every stage
            # inside the batch (a few µs per batch in framework + consume).
            self.write()

    def write(self) -> None:
        assert self.out is not None
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        tmp.replace(self.out)


def per_record_us(snapshot: Mapping[str, Any]) -> dict[str, float]:
    """µs per record of each stage (and their total) from a :meth:`snapshot`."""
    records = max(1, int(snapshot["records"]))
    out = {stage: snapshot["ns"][stage] / records / 1000 for stage in STAGES}
    out["total"] = sum(out.values())
    out["records per batch"] = records / max(1, int(snapshot.get("batches", 0)))
    return out


def profiled_guard(*args: Any, observer: BoundaryObserver | None = None, **kwargs: Any) -> Any:
    """A BoundaryGuard whose observer is a ProfileObserver around the one it was given."""
    out = os.environ.get("BENCH_PROFILE")
    profile = ProfileObserver(observer, Path(out) if out else None)
    return BoundaryGuard(*args, observer=profile, **kwargs)


#: The Faust app, built on first access (below).
app: Any


def __getattr__(name: str) -> Any:
    """``app`` is built on first use (``faust -A bench.profiled`` asks for it)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global app
    from zoneapp.application import create_app

    app = create_app(guard_factory=profiled_guard)[0]
    return app
