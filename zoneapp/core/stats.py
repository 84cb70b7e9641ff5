"""Per-boundary counters: counts only, never values.

Updated synchronously on the hot path (no I/O), read by the log reporter and
the web views.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

_RESERVOIR = 2048


class OutcomeCounters(Protocol):
    forwarded: int
    quarantined: int
    suppressed_fields: int
    reasons: Counter[str]
    detectors: Counter[str]
    transforms: Counter[str]


def count_outcome(counters: OutcomeCounters, outcome: Any) -> str | None:
    """Count one record's outcome (a sanitizer Forward or Quarantine), never its value:
    the one place an outcome becomes counts, for the worker's per-boundary totals and
    the per-partition table rows alike. Returns the quarantine reason, if any."""
    counters.transforms.update(getattr(outcome, "applied", {}))
    problems = getattr(outcome, "problems", None)
    if problems is None:
        counters.forwarded += 1
        counters.suppressed_fields += int(getattr(outcome, "suppressed", 0))
        return None
    counters.quarantined += 1
    reason: str = problems[0].reason
    counters.reasons[reason] += 1
    for p in problems:
        if p.detector:
            counters.detectors[p.detector] += 1
    return reason


@dataclass
class BoundaryStats:
    boundary: str
    source_zone: str
    destination_zone: str
    consumed: int = 0
    forwarded: int = 0
    quarantined: int = 0
    suppressed_fields: int = 0
    internal_errors: int = 0
    dependency_retries: int = 0
    waiting_on: str | None = None
    #: Ingress rate limit (zoneapp.core.ingress): records that waited, seconds waited,
    #: buckets in memory, takes charged to the shared overflow bucket.
    rate_delayed: int = 0
    rate_delay_seconds: float = 0.0
    rate_buckets: int = 0
    rate_overflow: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    detectors: Counter[str] = field(default_factory=Counter)
    transforms: Counter[str] = field(default_factory=Counter)
    _latencies: list[float] = field(default_factory=list, repr=False)
    _seen: int = field(default=0, repr=False)

    def on_latency(self, seconds: float) -> None:
        """Reservoir sample of per-record processing latency."""
        self._seen += 1
        if len(self._latencies) < _RESERVOIR:
            self._latencies.append(seconds)
        else:
            slot = random.randrange(self._seen)
            if slot < _RESERVOIR:
                self._latencies[slot] = seconds

    def percentiles(self) -> dict[str, float | None]:
        data = sorted(self._latencies)
        if not data:
            return {"p50": None, "p95": None, "p99": None}
        last = len(data) - 1
        return {f"p{q}": data[min(last, q * len(data) // 100)] for q in (50, 95, 99)}

    @property
    def in_flight(self) -> int:
        return self.consumed - self.forwarded - self.quarantined

    def snapshot(self) -> dict[str, Any]:
        return {
            "boundary": self.boundary,
            "source_zone": self.source_zone,
            "destination_zone": self.destination_zone,
            "consumed": self.consumed,
            "forwarded": self.forwarded,
            "quarantined": self.quarantined,
            "in_flight": self.in_flight,
            "suppressed_fields": self.suppressed_fields,
            "internal_errors": self.internal_errors,
            "dependency_retries": self.dependency_retries,
            "waiting_on": self.waiting_on,
            "rate_delayed": self.rate_delayed,
            "rate_delay_seconds": round(self.rate_delay_seconds, 3),
            "rate_buckets": self.rate_buckets,
            "rate_overflow": self.rate_overflow,
            "reasons": dict(self.reasons),
            "detectors": dict(self.detectors),
            "transforms": dict(self.transforms),
            "latency_seconds": self.percentiles(),
        }


# -- per source partition: the rows of the Faust stats tables ---------------------------

#: Upper bounds (seconds) of the latency histogram buckets; a last, open bucket follows.
LATENCY_BOUNDS: tuple[float, ...] = tuple(round(1e-5 * 2**i, 8) for i in range(22))
#: Seconds of history kept in a row for rates over the last minute.
RATE_WINDOW = 60.0
_SAMPLE_EVERY = 5.0
#: ``rate_delayed``: records that waited for their boundary's ingress rate limit.
COUNTERS = ("consumed", "forwarded", "quarantined", "suppressed_fields", "errors", "rate_delayed")


def bucket_of(seconds: float) -> int:
    for i, bound in enumerate(LATENCY_BOUNDS):
        if seconds <= bound:
            return i
    return len(LATENCY_BOUNDS)


def percentile_from_buckets(buckets: list[int], q: float) -> float | None:
    """Upper bound of the bucket holding the q-quantile (None without data)."""
    total = sum(buckets)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= rank and n:
            return LATENCY_BOUNDS[i] if i < len(LATENCY_BOUNDS) else float(LATENCY_BOUNDS[-1] * 2)
    return float(LATENCY_BOUNDS[-1] * 2)


@dataclass
class PartitionStats:
    """Counters of one boundary for one source partition: one row of its stats table.

    Written only by the worker that owns the partition, as absolute values. ``offset``
    is the last source offset counted: when a partition moves, the new owner starts
    from the row and skips records at or below it, so a redelivered record is not
    counted twice.
    """

    boundary: str
    topic: str
    partition: int
    source_zone: str
    destination_zone: str
    offset: int = -1
    consumed: int = 0
    forwarded: int = 0
    quarantined: int = 0
    suppressed_fields: int = 0
    errors: int = 0
    rate_delayed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    detectors: Counter[str] = field(default_factory=Counter)
    transforms: Counter[str] = field(default_factory=Counter)
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    latency_sum: float = 0.0
    lag: int | None = None
    history: list[list[float]] = field(default_factory=list)
    updated: float = 0.0
    dirty: bool = field(default=False, repr=False)

    @property
    def key(self) -> str:
        return row_key(self.topic, self.partition)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PartitionStats:
        stats = cls(
            str(row["boundary"]),
            str(row["topic"]),
            int(row["partition"]),
            str(row["source_zone"]),
            str(row["destination_zone"]),
        )
        stats.offset = int(row.get("offset", -1))
        for name in COUNTERS:
            setattr(stats, name, int(row.get(name, 0)))
        for name in ("reasons", "detectors", "transforms"):
            getattr(stats, name).update({str(k): int(v) for k, v in row.get(name, {}).items()})
        buckets = [int(n) for n in row.get("latency_buckets", [])]
        if len(buckets) == len(stats.latency_buckets):
            stats.latency_buckets = buckets
        stats.latency_sum = float(row.get("latency_sum", 0.0))
        stats.history = [list(map(float, s)) for s in row.get("history", [])]
        stats.updated = float(row.get("updated", 0.0))
        return stats

    def on_record(self, offset: int, outcome: Any, latency: float, delayed: bool = False) -> None:
        """Count one record's outcome (a sanitizer Forward or Quarantine); never its value.
        ``delayed``: it waited for the ingress rate limit."""
        if offset <= self.offset:
            return
        self.offset = offset
        self.consumed += 1
        self.rate_delayed += delayed
        if count_outcome(self, outcome) == "internal_error":
            self.errors += 1
        self.latency_buckets[bucket_of(latency)] += 1
        self.latency_sum += latency
        self.dirty = True

    def to_row(self, now: float) -> dict[str, Any]:
        if not self.history or now - self.history[-1][0] >= _SAMPLE_EVERY:
            self.history.append([now, self.consumed, self.forwarded, self.quarantined])
        while len(self.history) > 2 and now - self.history[1][0] >= RATE_WINDOW:
            self.history.pop(0)
        self.updated = now
        self.dirty = False
        return {
            "boundary": self.boundary,
            "topic": self.topic,
            "partition": self.partition,
            "source_zone": self.source_zone,
            "destination_zone": self.destination_zone,
            "offset": self.offset,
            **{name: getattr(self, name) for name in COUNTERS},
            "reasons": dict(self.reasons),
            "detectors": dict(self.detectors),
            "transforms": dict(self.transforms),
            "latency_buckets": list(self.latency_buckets),
            "latency_sum": round(self.latency_sum, 6),
            "lag": self.lag,
            "history": [list(s) for s in self.history],
            "updated": now,
        }


def row_key(topic: str, partition: int) -> str:
    return f"{topic}#{partition}"


def aggregate(rows: Iterable[Mapping[str, Any]], now: float) -> dict[str, Any]:
    """Sum stats rows into one view: counters, breakdowns, latency, lag and rates."""
    total: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    reasons: Counter[str] = Counter()
    detectors: Counter[str] = Counter()
    transforms: Counter[str] = Counter()
    buckets = [0] * (len(LATENCY_BOUNDS) + 1)
    latency_sum = 0.0
    lag = 0
    per_second = {"consumed": 0.0, "forwarded": 0.0, "quarantined": 0.0}
    partitions = 0
    for row in rows:
        partitions += 1
        for name in COUNTERS:
            total[name] += int(row.get(name, 0))
        reasons.update(row.get("reasons", {}))
        detectors.update(row.get("detectors", {}))
        transforms.update(row.get("transforms", {}))
        for i, n in enumerate(row.get("latency_buckets", [])[: len(buckets)]):
            buckets[i] += int(n)
        latency_sum += float(row.get("latency_sum", 0.0))
        lag += int(row.get("lag") or 0)
        for name, rate in row_rates(row, now).items():
            per_second[name] += rate
    total.update(
        {
            "blocked": total["quarantined"],
            "reasons": dict(sorted(reasons.items())),
            "detectors": dict(sorted(detectors.items())),
            "transforms": dict(sorted(transforms.items())),
            "latency_seconds": {
                f"p{q}": percentile_from_buckets(buckets, q / 100) for q in (50, 95, 99)
            },
            "consumer_lag": lag,
            "rates_per_second": {k: round(v, 3) for k, v in per_second.items()},
            "partitions": partitions,
        }
    )
    return total


def row_rates(row: Mapping[str, Any], now: float) -> dict[str, float]:
    """Per-second rates over the last minute from a row's samples (0 when idle)."""
    samples = [s for s in row.get("history", []) if now - float(s[0]) <= RATE_WINDOW + 1]
    current = [float(row.get("updated", now)), *(float(row.get(n, 0)) for n in COUNTERS[:3])]
    if not samples:
        return {"consumed": 0.0, "forwarded": 0.0, "quarantined": 0.0}
    first = samples[0]
    elapsed = max(now - float(first[0]), 1.0)
    return {
        name: max(0.0, (current[i + 1] - float(first[i + 1])) / elapsed)
        for i, name in enumerate(("consumed", "forwarded", "quarantined"))
    }
