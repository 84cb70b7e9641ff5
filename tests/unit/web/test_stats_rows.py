"""Stats rows: counts per source partition, offset-anchored, merged into views."""

from __future__ import annotations

from typing import Any

import pytest

from zoneapp.core.sanitizer import Forward, Problem, Quarantine
from zoneapp.core.stats import PartitionStats, aggregate, percentile_from_buckets, row_rates
from zoneapp.observability.metrics import render


def forward(applied: dict[str, int] | None = None, suppressed: int = 0) -> Forward:
    return Forward(None, b"{}", [], [], applied or {"keep": 2}, suppressed)


def quarantine(reason: str = "dlp", detector: str | None = "CREDIT_CARD") -> Quarantine:
    return Quarantine([Problem(reason, path="notes", detector=detector)], {"mask": 1})


def test_counts_outcomes_without_values() -> None:
    s = PartitionStats("b", "restricted.payments", 0, "restricted", "confidential")
    s.on_record(0, forward(suppressed=2), 0.001)
    s.on_record(1, quarantine(), 0.002)
    s.on_record(2, quarantine("internal_error", None), 0.002)
    row = s.to_row(1000.0)
    assert (row["consumed"], row["forwarded"], row["quarantined"]) == (3, 1, 2)
    assert row["suppressed_fields"] == 2 and row["errors"] == 1
    assert row["detectors"] == {"CREDIT_CARD": 1}
    assert row["reasons"] == {"dlp": 1, "internal_error": 1}
    assert row["transforms"] == {"keep": 2, "mask": 2}
    assert row["offset"] == 2 and sum(row["latency_buckets"]) == 3


def test_a_new_owner_does_not_count_redelivered_records_twice() -> None:
    old = PartitionStats("b", "t", 1, "restricted", "confidential")
    for offset in range(10):
        old.on_record(offset, forward(), 0.001)
    row = old.to_row(1000.0)
    new = PartitionStats.from_row(row)
    for offset in range(5, 15):  # redelivered 5..9 after the rebalance, then new ones
        new.on_record(offset, forward(), 0.001)
    assert new.to_row(1001.0)["consumed"] == 15


def test_aggregate_sums_rows_and_computes_rates() -> None:
    a = PartitionStats("b", "t", 0, "restricted", "confidential")
    a.history = [[1000.0, 0, 0, 0]]
    for offset in range(60):
        a.on_record(offset, forward(), 0.0005)
    b = PartitionStats("b", "t", 1, "restricted", "confidential")
    b.history = [[1000.0, 0, 0, 0]]
    b.on_record(0, quarantine(), 0.5)
    rows = [a.to_row(1030.0), b.to_row(1030.0)]
    view = aggregate(rows, 1030.0)
    assert (view["consumed"], view["forwarded"], view["blocked"]) == (61, 60, 1)
    assert view["rates_per_second"]["forwarded"] == pytest.approx(2.0)
    assert view["latency_seconds"]["p50"] is not None
    assert view["latency_seconds"]["p99"] >= 0.5
    # An idle minute later the rates fall back to zero; the counters stay.
    assert row_rates(rows[0], 1200.0)["forwarded"] == 0.0
    assert aggregate(rows, 1200.0)["forwarded"] == 60


def test_percentiles_from_empty_buckets_are_none() -> None:
    assert percentile_from_buckets([0, 0, 0], 0.5) is None


def test_metrics_parse_as_prometheus_text() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    s = PartitionStats('pay"ments', "t", 0, "restricted", "confidential")
    s.on_record(0, forward({"tokenize": 3}), 0.001)
    s.on_record(1, quarantine(), 0.003)
    text = render([s.to_row(1000.0)])
    families: dict[str, Any] = {f.name: f for f in text_string_to_metric_families(text)}
    consumed = families["zoneapp_records_consumed"].samples[0]
    assert consumed.value == 2 and consumed.labels["boundary"] == 'pay"ments'
    hits = families["zoneapp_detector_hits"].samples[0]
    assert hits.labels["detector"] == "CREDIT_CARD" and hits.value == 1
    transforms = {
        s.labels["transform"]: s.value for s in families["zoneapp_transform_applications"].samples
    }
    assert transforms == {"tokenize": 3, "mask": 1}
    latency = families["zoneapp_processing_latency_seconds"]
    assert latency.type == "histogram"
    count = next(x for x in latency.samples if x.name.endswith("_count"))
    assert count.value == 2
