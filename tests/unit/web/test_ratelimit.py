"""Per-caller token buckets."""

from __future__ import annotations

import pytest

from zoneapp.web.ratelimit import RateLimiter


def test_burst_then_refill_per_caller() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.allow("alice") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("bob")  # another caller has its own bucket
    assert limiter.retry_after("alice") == pytest.approx(0.5)
    now[0] = 0.5
    assert limiter.allow("alice") and not limiter.allow("alice")
    now[0] = 100.0
    assert sum(limiter.allow("alice") for _ in range(10)) == 3  # never more than the burst


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)


def test_the_bucket_table_is_bounded() -> None:
    """A caller inventing a new source per request cannot grow the table without end."""
    limiter = RateLimiter(rate=1.0, burst=1, clock=lambda: 0.0, max_callers=100)
    for i in range(10_000):
        limiter.allow(f"10.{i // 256}.{i % 256}.1")
    assert len(limiter) == 100
    assert not limiter.allow("10.39.15.1")  # the most recent ones are kept, still empty
