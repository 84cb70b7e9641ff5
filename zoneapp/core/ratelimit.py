"""Token buckets for ingress rate limits, bounded in memory and in how fast they appear.

A :class:`TokenBuckets` table holds one bucket per tenant (or per tenant and record
key) of a boundary, in this worker's memory: ``rate`` tokens a second, at most
``burst`` held. :class:`RateLimiter` charges a record to its buckets: with
``per: tenant`` its tenant's; with ``per: tenant_and_key`` its key's **and** its
tenant's (the tenant bucket has its own ``tenant_rate`` / ``tenant_burst``), so the
keys of a tenant share the tenant's limit and a new key gets no burst beyond it. A
record is charged to all of its buckets or to none. Two ways to take:

- :meth:`RateLimiter.reserve` (``over_limit: delay``) takes one token of each bucket,
  letting them go into debt, and answers how long to wait until those tokens exist.
  A caller that waits that long before releasing the record keeps every bucket's
  promise: by any time T, at most ``burst + rate * T`` of a bucket's records are
  released. A record that would wait longer than ``max_wait`` takes nothing.
- :meth:`RateLimiter.try_take` (``over_limit: quarantine``) takes only if every
  bucket has a token.

**The tenant table is bounded twice.** At most ``max_buckets`` buckets (the least
recently used one is dropped only when it has refilled to ``burst``: it then holds no
state, so dropping it lifts no limit), and at most ``new_buckets`` new buckets at once
and ``new_buckets`` per refill interval (``burst / rate`` seconds) after that. A
newcomer beyond either bound shares one **overflow bucket** (same rate and burst) with
all other such newcomers. So a producer inventing a tenant id per record gets at most
``new_buckets`` fresh bursts plus the overflow bucket's, then ``new_buckets * rate``
more a second: never a fresh burst per id (counted as ``overflow``).

**The key table** (``per: tenant_and_key``) is bounded by ``max_buckets`` alone: a new
key can never pass its tenant's limit, so new keys need no creation bound. A new key
that finds the table full of busy buckets is limited by its tenant bucket only
(counted as ``untracked``): the tenant's limit still holds, and one tenant churning
keys cannot push other tenants' keys into a shared bucket.

The clock is injectable (monotonic seconds), so the tests need no sleeps.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


#: One token taken: the table (for its rate and burst) and the bucket it came from.
Charge = tuple["TokenBuckets", _Bucket]


class TokenBuckets:
    """``rate`` records a second per key, bursts up to ``burst``, at most ``max_buckets`` keys.

    ``new_buckets``: at most that many buckets are created at once and per ``burst /
    rate`` seconds (None: no bound). ``overflow``: a newcomer that gets no bucket shares
    the overflow bucket (True) or gets none (False; the caller relies on another limit).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        max_buckets: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        new_buckets: int | None = None,
        overflow: bool = True,
    ) -> None:
        no_new = new_buckets is not None and new_buckets < 1
        if rate <= 0 or burst < 1 or max_buckets < 1 or no_new:
            raise ValueError("rate must be positive, burst, max_buckets and new_buckets at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_buckets = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._overflow: _Bucket | None = None
        self._use_overflow = overflow
        # Creation allowance: a token bucket of bucket creations.
        self.new_buckets = new_buckets
        self._new = None if new_buckets is None else _Bucket(float(new_buckets), clock())
        self._new_rate = 0.0 if new_buckets is None else new_buckets * rate / burst
        #: Takes charged to the shared overflow bucket (no slot, or too many new buckets).
        self.overflow = 0
        #: Newcomers without a bucket and without the overflow bucket (``overflow=False``).
        self.untracked = 0
        #: Refilled buckets dropped to make room.
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        if now > bucket.updated:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now

    def _no_slot(self, now: float) -> _Bucket | None:
        if not self._use_overflow:
            self.untracked += 1
            return None
        self.overflow += 1
        if self._overflow is None:
            self._overflow = _Bucket(self.burst, now)
        return self._overflow

    def bucket(self, key: Hashable, now: float) -> _Bucket | None:
        """``key``'s bucket, a new one, the overflow bucket, or None (see the class)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets.move_to_end(key)
            return bucket
        new = self._new
        if new is not None:
            assert self.new_buckets is not None
            if now > new.updated:
                new.tokens = min(
                    float(self.new_buckets), new.tokens + (now - new.updated) * self._new_rate
                )
                new.updated = now
            if new.tokens < 1.0:
                return self._no_slot(now)
        if len(self._buckets) >= self.max_buckets:
            oldest_key, oldest = next(iter(self._buckets.items()))
            self._refill(oldest, now)
            if oldest.tokens < self.burst:
                return self._no_slot(now)
            del self._buckets[oldest_key]
            self.evicted += 1
        if new is not None:
            new.tokens -= 1.0
        bucket = self._buckets[key] = _Bucket(self.burst, now)
        return bucket

    def wait(self, bucket: _Bucket, now: float) -> float:
        """Seconds until ``bucket`` has a token (0: it has one now)."""
        self._refill(bucket, now)
        return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self.rate

    def give_back(self, bucket: _Bucket, now: float) -> None:
        """Return a token taken for a record that was never released."""
        self._refill(bucket, now)
        bucket.tokens = min(self.burst, bucket.tokens + 1.0)

    # One table on its own (``per: tenant``, and the tests).
    def reserve(self, key: Hashable, max_wait: float = math.inf) -> float | None:
        """Take a token, in debt if need be; seconds until it is there (0: now), or
        None (nothing taken) when that would be more than ``max_wait``."""
        got = RateLimiter(self).reserve(key, None, max_wait)
        return None if isinstance(got, str) else got[0]

    def try_take(self, key: Hashable) -> bool:
        """Take a token if there is one."""
        return RateLimiter(self).try_take(key) is None


class RateLimiter:
    """Charges a record to its tenant's bucket and, with a key table, its key's too."""

    def __init__(
        self,
        tenants: TokenBuckets,
        keys: TokenBuckets | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.tenants = tenants
        self.keys = keys
        self._clock = clock or tenants._clock

    def __len__(self) -> int:
        return len(self.tenants) + (0 if self.keys is None else len(self.keys))

    @property
    def overflow(self) -> int:
        """Newcomers that got no bucket of their own (overflow bucket, or tenant bucket only)."""
        return self.tenants.overflow + (0 if self.keys is None else self.keys.untracked)

    def _charges(self, tenant: Hashable, key: Hashable, now: float) -> list[tuple[str, Charge]]:
        out: list[tuple[str, Charge]] = []
        if self.keys is not None:
            kb = self.keys.bucket((tenant, key), now)
            if kb is not None:
                out.append(("key", (self.keys, kb)))
        tb = self.tenants.bucket(tenant, now)
        assert tb is not None  # the tenant table always has the overflow bucket
        out.append(("tenant", (self.tenants, tb)))
        return out

    def try_take(self, tenant: Hashable, key: Hashable = None) -> str | None:
        """Take one token of each bucket if each has one: None, else which is empty
        (``"key"`` or ``"tenant"``), and nothing is taken."""
        now = self._clock()
        charges = self._charges(tenant, key, now)
        for which, (table, bucket) in charges:
            table._refill(bucket, now)
            if bucket.tokens < 1.0:
                return which
        for _, (_, bucket) in charges:
            bucket.tokens -= 1.0
        return None

    def reserve(
        self, tenant: Hashable, key: Hashable = None, max_wait: float = math.inf
    ) -> tuple[float, list[Charge]] | str:
        """Take one token of each bucket, in debt if need be: (seconds until they all
        exist, what was taken, for :meth:`give_back`). When that wait would be more than
        ``max_wait``, nothing is taken and the answer is which bucket is too far in debt."""
        now = self._clock()
        charges = self._charges(tenant, key, now)
        wait = 0.0
        for which, (table, bucket) in charges:
            w = table.wait(bucket, now)
            if w > max_wait:
                return which
            wait = max(wait, w)
        for _, (_, bucket) in charges:
            bucket.tokens -= 1.0
        return wait, [c for _, c in charges]

    def give_back(self, charges: list[Charge]) -> None:
        """Return the tokens of records that were never released (a cancelled wait)."""
        now = self._clock()
        for table, bucket in charges:
            table.give_back(bucket, now)
