"""``GET /metrics``: the stats tables in the Prometheus text format (version 0.0.4).

Counters are summed over every source partition of the cluster (the same rows
``/zones`` shows), so any worker serves the same numbers; scrape one of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from zoneapp.core.stats import COUNTERS, LATENCY_BOUNDS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = {
    "consumed": ("zoneapp_records_consumed_total", "Records read from the source zone."),
    "forwarded": ("zoneapp_records_forwarded_total", "Records forwarded to the lower zone."),
    "quarantined": ("zoneapp_records_quarantined_total", "Records quarantined (blocked)."),
    "suppressed_fields": (
        "zoneapp_fields_suppressed_total",
        "Fields dropped by default-deny or suppress rules.",
    ),
    "errors": ("zoneapp_errors_total", "Records quarantined because of an internal error."),
    "rate_delayed": (
        "zoneapp_records_rate_delayed_total",
        "Records that waited for the boundary's ingress rate limit (over_limit: delay).",
    ),
}
_BREAKDOWNS = {
    "reasons": ("zoneapp_violations_total", "reason", "Quarantined records by first reason."),
    "detectors": ("zoneapp_detector_hits_total", "detector", "DLP detector hits."),
    "transforms": ("zoneapp_transform_applications_total", "transform", "Transform applications."),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs.items()) + "}"


def _num(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(rows: Iterable[Mapping[str, Any]]) -> str:
    by_boundary: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_boundary[str(row["boundary"])].append(row)
    lines: list[str] = []

    def labels_of(boundary: str) -> dict[str, str]:
        first = by_boundary[boundary][0]
        return {
            "boundary": boundary,
            "zone": str(first["source_zone"]),
            "destination_zone": str(first["destination_zone"]),
        }

    for name in COUNTERS:
        metric, help_text = _COUNTERS[name]
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        for boundary, rs in sorted(by_boundary.items()):
            total = sum(int(r.get(name, 0)) for r in rs)
            lines.append(f"{metric}{_labels(labels_of(boundary))} {total}")
    for field, (metric, label, help_text) in _BREAKDOWNS.items():
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        for boundary, rs in sorted(by_boundary.items()):
            sums: dict[str, int] = defaultdict(int)
            for r in rs:
                for k, v in (r.get(field) or {}).items():
                    sums[str(k)] += int(v)
            for k, v in sorted(sums.items()):
                lines.append(f"{metric}{_labels({**labels_of(boundary), label: k})} {v}")
    metric = "zoneapp_processing_latency_seconds"
    lines += [
        f"# HELP {metric} Per-record processing time in the worker (batch time / records).",
        f"# TYPE {metric} histogram",
    ]
    for boundary, rs in sorted(by_boundary.items()):
        buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        total_sum = 0.0
        for r in rs:
            for i, n in enumerate((r.get("latency_buckets") or [])[: len(buckets)]):
                buckets[i] += int(n)
            total_sum += float(r.get("latency_sum", 0.0))
        base = labels_of(boundary)
        running = 0
        for bound, n in zip(LATENCY_BOUNDS, buckets, strict=False):
            running += n
            lines.append(f"{metric}_bucket{_labels({**base, 'le': repr(bound)})} {running}")
        running += buckets[-1]
        lines.append(f"{metric}_bucket{_labels({**base, 'le': '+Inf'})} {running}")
        lines.append(f"{metric}_sum{_labels(base)} {_num(round(total_sum, 6))}")
        lines.append(f"{metric}_count{_labels(base)} {running}")
    metric = "zoneapp_consumer_lag"
    lines += [
        f"# HELP {metric} Records in the source partitions not yet processed.",
        f"# TYPE {metric} gauge",
    ]
    for boundary, rs in sorted(by_boundary.items()):
        lag = sum(int(r.get("lag") or 0) for r in rs)
        lines.append(f"{metric}{_labels(labels_of(boundary))} {lag}")
    return "\n".join(lines) + "\n"
