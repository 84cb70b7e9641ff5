"""Token buckets on a clock the test moves: bursts, refill, debt, and a bounded table."""

from __future__ import annotations

import pytest

from zoneapp.core.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_burst_passes_then_the_rate(clock: Clock) -> None:
    buckets = TokenBuckets(rate=10, burst=5, max_buckets=10, clock=clock)
    assert [buckets.try_take("acme") for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.1  # one token back
    assert buckets.try_take("acme") and not buckets.try_take("acme")
    clock.now += 10  # refills to the burst, not beyond
    assert sum(buckets.try_take("acme") for _ in range(20)) == 5


def test_tenants_have_their_own_buckets(clock: Clock) -> None:
    buckets = TokenBuckets(rate=1, burst=2, max_buckets=10, clock=clock)
    assert [buckets.try_take("acme") for _ in range(3)] == [True, True, False]
    assert [buckets.try_take("globex") for _ in range(3)] == [True, True, False]
    assert len(buckets) == 2


def test_reserve_answers_the_wait_that_keeps_the_rate(clock: Clock) -> None:
    buckets = TokenBuckets(rate=10, burst=2, max_buckets=10, clock=clock)
    waits = [buckets.reserve("acme") for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])
    # After waiting the longest, the debt is paid: the next one waits 0.1 s again.
    clock.now += 0.3
    assert buckets.reserve("acme") == pytest.approx(0.1)


def test_released_at_their_reserved_time_no_more_than_burst_plus_rate_times_t(
    clock: Clock,
) -> None:
    rate, burst = 20.0, 5
    buckets = TokenBuckets(rate=rate, burst=burst, max_buckets=10, clock=clock)
    start = clock.now
    released: list[float] = []
    for _ in range(10):  # ten batches of 30 records, each batch waits for its longest
        waits = [buckets.reserve("acme") for _ in range(30)]
        clock.now += max(waits)
        released += [clock.now] * 30
    for t in released:
        count = sum(1 for r in released if r <= t)
        assert count <= burst + rate * (t - start) + 1e-9


def test_the_table_is_bounded_and_drops_only_refilled_buckets(clock: Clock) -> None:
    buckets = TokenBuckets(rate=1, burst=2, max_buckets=3, clock=clock)
    for tenant in ("a", "b", "c"):
        assert buckets.try_take(tenant)
    # Full of buckets still in debt: a newcomer shares the overflow bucket.
    assert [buckets.try_take(f"new-{i}") for i in range(3)] == [True, True, False]
    assert len(buckets) == 3 and buckets.overflow == 3 and buckets.evicted == 0
    # One second later "a" (the least recently used) has refilled: it makes room.
    clock.now += 1.0
    assert buckets.try_take("d")
    assert len(buckets) == 3 and buckets.evicted == 1


def test_inventing_tenant_ids_gets_one_more_bucket_not_a_burst_each(clock: Clock) -> None:
    rate, burst, slots = 5.0, 10, 100
    buckets = TokenBuckets(rate=rate, burst=burst, max_buckets=slots, clock=clock)
    for i in range(slots):  # fill the table with busy buckets
        for _ in range(burst):
            buckets.try_take(f"busy-{i}")
    passed = sum(buckets.try_take(f"attacker-{n}") for n in range(100_000))
    assert passed == burst  # the overflow bucket's burst, and no more
    assert len(buckets) == slots


@pytest.mark.parametrize(("rate", "burst", "slots"), [(0, 1, 1), (-1, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_bad_parameters_are_refused(rate: float, burst: int, slots: int) -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate=rate, burst=burst, max_buckets=slots)
