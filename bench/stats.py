"""The bench's arithmetic: percentiles, rates and ratios (unit-tested: tests/unit/bench)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "rate", "ratio", "summary"]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 1): the smallest value at or above a
    ``q`` share of the values; NaN for no values. p100 is the maximum."""
    if not 0.0 < q <= 1.0:
        raise ValueError("q must be in (0, 1]")
    if not values:
        return math.nan
    data = sorted(values)
    return data[max(0, math.ceil(q * len(data)) - 1)]


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and the maximum."""
    return {
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": percentile(values, 1.0),
    }


def rate(count: int, first: float, last: float) -> float:
    """Records per second between the first and the last of ``count`` records.

    ``count - 1`` intervals lie between them; NaN when there is no interval to time.
    """
    if count < 2 or last <= first:
        return math.nan
    return (count - 1) / (last - first)


def ratio(a: float, b: float) -> float:
    """a / b, NaN when either is missing or b is zero."""
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b
