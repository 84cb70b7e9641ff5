"""The bench's percentiles and rates (bench/stats.py): what its printout is computed with."""

from __future__ import annotations

import math

import pytest

from bench.stats import percentile, rate, ratio, summary


def test_nearest_rank_percentiles() -> None:
    values = list(range(1, 101))  # 1..100, shuffled order must not matter
    values.reverse()
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.5) == 1.0
    assert percentile([1.0, 2.0], 0.51) == 2.0
    assert math.isnan(percentile([], 0.5))
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError):
            percentile([1.0], bad)


def test_summary_of_a_skewed_sample() -> None:
    values = [1.0] * 990 + [100.0] * 10
    assert summary(values) == {"p50": 1.0, "p95": 1.0, "p99": 1.0, "max": 100.0}
    values = [1.0] * 980 + [100.0] * 20
    assert summary(values)["p99"] == 100.0


def test_rate_counts_intervals_not_records() -> None:
    assert rate(11, 0.0, 1.0) == 10.0
    assert math.isnan(rate(1, 0.0, 1.0))
    assert math.isnan(rate(10, 2.0, 2.0))
    assert ratio(10.0, 4.0) == 2.5
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))
