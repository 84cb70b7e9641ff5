"""Per-boundary counters: counts only, never values.

Updated synchronously on the hot path (no I/O), read by the log reporter and
the web views.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_RESERVOIR = 2048


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
            "reasons": dict(self.reasons),
            "detectors": dict(self.detectors),
            "transforms": dict(self.transforms),
            "latency_seconds": self.percentiles(),
        }
