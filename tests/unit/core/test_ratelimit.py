"""Token buckets on a clock the test moves: bursts, refill, debt, and a bounded table."""

from __future__ import annotations

import pytest

from zoneapp.core.ratelimit import RateLimiter, TokenBuckets


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
        assert None not in waits  # no max_wait: every record takes its token
        clock.now += max(w or 0.0 for w in waits)
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


def test_a_new_key_gets_no_burst_beyond_its_tenants(clock: Clock) -> None:
    """README, Rate limits: with per: tenant_and_key every record is charged to its
    tenant's bucket too; a key per record passes the tenant's burst, not a burst per key."""

    def limiter() -> RateLimiter:
        tenants = TokenBuckets(rate=10, burst=5, max_buckets=100, clock=clock, new_buckets=10)
        keys = TokenBuckets(rate=1, burst=2, max_buckets=100, clock=clock, overflow=False)
        return RateLimiter(tenants, keys)

    same_key = limiter()
    assert [same_key.try_take("acme", b"k") for _ in range(4)] == [None, None, "key", "key"]
    new_keys = limiter()
    got = [new_keys.try_take("acme", f"k{i}".encode()) for i in range(300)]
    assert got == [None] * 5 + ["tenant"] * 295  # the tenant's burst, and no more
    # Refused records take nothing: the key buckets 5.. still hold their burst.
    clock.now += 0.1  # one tenant token back
    assert new_keys.try_take("acme", b"k7") is None and new_keys.try_take("acme", b"k8") == "tenant"
    # Another tenant is not held back by acme's keys.
    assert new_keys.try_take("globex", b"k1") is None


def test_a_new_key_with_no_slot_is_still_within_its_tenants_limit(clock: Clock) -> None:
    tenants = TokenBuckets(rate=1, burst=3, max_buckets=10, clock=clock)
    keys = TokenBuckets(rate=1, burst=1, max_buckets=2, clock=clock, overflow=False)
    limiter = RateLimiter(tenants, keys)
    assert limiter.try_take("acme", b"a") is None and limiter.try_take("acme", b"b") is None
    # The key table is full of busy buckets: "c" has none, the tenant limit still holds.
    assert limiter.try_take("acme", b"c") is None and limiter.try_take("acme", b"d") == "tenant"
    assert keys.untracked == 2 and len(keys) == 2 and limiter.overflow == 2


def test_inventing_tenant_ids_gets_new_buckets_bursts_at_once_not_one_each(clock: Clock) -> None:
    """README, Rate limits: from a quiet start, a tenant id per record passes at most
    (new_buckets + 1) x burst records at once, however many ids."""
    rate, burst, new = 1.0, 3, 10
    buckets = TokenBuckets(rate=rate, burst=burst, max_buckets=10_000, clock=clock, new_buckets=new)
    # Each id used until it is refused: the new buckets' bursts and the overflow bucket's.
    passed = 0
    for n in range(100_000):
        while buckets.try_take(f"attacker-{n}"):
            passed += 1
    assert passed == (new + 1) * burst
    assert len(buckets) == new
    # A new id per record, on a fresh table: one record per new bucket, then the overflow.
    fresh = TokenBuckets(rate=rate, burst=burst, max_buckets=10_000, clock=clock, new_buckets=new)
    assert sum(fresh.try_take(f"attacker-{n}") for n in range(100_000)) == new + burst
    assert fresh.overflow == 100_000 - new


def test_inventing_tenant_ids_over_time_gets_new_buckets_per_refill_interval(
    clock: Clock,
) -> None:
    """README, Rate limits: over T seconds at most new_buckets x (1 + T x rate / burst)
    new buckets appear; every other newcomer shares the overflow bucket."""
    rate, burst, new, seconds = 1.0, 3, 10, 100
    buckets = TokenBuckets(rate=rate, burst=burst, max_buckets=10_000, clock=clock, new_buckets=new)
    start, passed, n = clock.now, 0, 0
    for _ in range(seconds * 100):  # 10 new ids every 10 ms for 100 s
        for _ in range(10):
            passed += buckets.try_take(f"attacker-{n}")
            n += 1
        clock.now += 0.01
    elapsed = clock.now - start
    created = new * (1 + elapsed * rate / burst)
    assert len(buckets) <= created + 1e-9
    assert len(buckets) >= created - 2  # genuine newcomers still get buckets at that pace
    # Each created bucket served one record (its burst unused), plus the overflow bucket.
    assert passed <= created + burst + rate * elapsed + 1e-9
    assert n == 100_000


def test_a_genuine_tenant_keeps_its_bucket_while_ids_are_invented(clock: Clock) -> None:
    buckets = TokenBuckets(rate=1, burst=2, max_buckets=100, clock=clock, new_buckets=1)
    assert buckets.try_take("acme")
    for n in range(1000):
        buckets.try_take(f"attacker-{n}")
    assert buckets.try_take("acme") and not buckets.try_take("acme")


def test_reserve_with_max_wait_takes_nothing_beyond_it(clock: Clock) -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_buckets=10, clock=clock)
    assert [buckets.reserve("acme", max_wait=2.0) for _ in range(5)] == [
        0.0, pytest.approx(1.0), pytest.approx(2.0), None, None,
    ]  # fmt: skip
    clock.now += 1.0  # nothing was taken for the refused ones: one second paid off one
    assert buckets.reserve("acme", max_wait=2.0) == pytest.approx(2.0)


def test_given_back_tokens_are_not_charged_twice(clock: Clock) -> None:
    tenants = TokenBuckets(rate=1, burst=2, max_buckets=10, clock=clock)
    keys = TokenBuckets(rate=1, burst=1, max_buckets=10, clock=clock, overflow=False)
    limiter = RateLimiter(tenants, keys)
    charges = []
    for _ in range(3):
        got = limiter.reserve("acme", b"k")
        assert not isinstance(got, str)
        charges += got[1]
    limiter.give_back(charges)  # the batch was cancelled before anything was released
    waits = []
    for _ in range(3):  # redelivered: the same waits as the first time, not more
        got = limiter.reserve("acme", b"k")
        assert not isinstance(got, str)
        waits.append(got[0])
    assert waits == [0.0, pytest.approx(1.0), pytest.approx(2.0)]


@pytest.mark.parametrize(("rate", "burst", "slots"), [(0, 1, 1), (-1, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_bad_parameters_are_refused(rate: float, burst: int, slots: int) -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate=rate, burst=burst, max_buckets=slots)


def test_zero_new_buckets_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate=1, burst=1, max_buckets=1, new_buckets=0)
