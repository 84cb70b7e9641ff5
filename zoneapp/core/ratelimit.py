"""Token buckets for ingress rate limits, bounded in memory.

One bucket per tenant (or per tenant and record key) of a boundary, in this worker's
memory: ``rate`` tokens a second, at most ``burst`` held. Two ways to take a token:

- :meth:`TokenBuckets.reserve` (``over_limit: delay``) always takes one, letting the
  bucket go into debt, and answers how long to wait until that token exists. A caller
  that waits that long before releasing the record keeps the bucket's promise: by any
  time T, at most ``burst + rate * T`` of a bucket's records are released.
- :meth:`TokenBuckets.try_take` (``over_limit: quarantine``) takes one only if there
  is one.

**The table is bounded** (``max_buckets``), so a producer inventing a tenant id or a key
per record cannot exhaust memory. The least recently used bucket is dropped only when
it has refilled to ``burst``: such a bucket holds no state (a new one is the same), so
dropping it lifts no limit. When even that one is still in debt, every bucket is busy,
and a new tenant or key shares one **overflow bucket** (same rate and burst) with all
other newcomers until a slot frees up: inventing ids gets an attacker one more bucket,
not a fresh burst per id. The cost falls on genuine newcomers while the table is full
of busy buckets (counted as ``overflow``; raise ``max_buckets``, or bind tenants to
topics with ``tenants:`` so unknown ids never get this far).

The clock is injectable (monotonic seconds), so the tests need no sleeps.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """``rate`` records a second per key, bursts up to ``burst``, at most ``max_buckets`` keys."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_buckets: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_buckets < 1:
            raise ValueError("rate must be positive, burst and max_buckets at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_buckets = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._overflow: _Bucket | None = None
        #: Takes charged to the shared overflow bucket (the table was full of busy buckets).
        self.overflow = 0
        #: Refilled buckets dropped to make room.
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        if now > bucket.updated:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now

    def _bucket(self, key: Hashable, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets.move_to_end(key)
            return bucket
        if len(self._buckets) >= self.max_buckets:
            oldest_key, oldest = next(iter(self._buckets.items()))
            self._refill(oldest, now)
            if oldest.tokens < self.burst:
                self.overflow += 1
                if self._overflow is None:
                    self._overflow = _Bucket(self.burst, now)
                return self._overflow
            del self._buckets[oldest_key]
            self.evicted += 1
        bucket = self._buckets[key] = _Bucket(self.burst, now)
        return bucket

    def reserve(self, key: Hashable) -> float:
        """Take a token, in debt if need be; seconds until it is there (0: now)."""
        now = self._clock()
        bucket = self._bucket(key, now)
        self._refill(bucket, now)
        bucket.tokens -= 1.0
        return 0.0 if bucket.tokens >= 0 else -bucket.tokens / self.rate

    def try_take(self, key: Hashable) -> bool:
        """Take a token if there is one."""
        now = self._clock()
        bucket = self._bucket(key, now)
        self._refill(bucket, now)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True
