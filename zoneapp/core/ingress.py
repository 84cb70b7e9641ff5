"""Ingress checks on a parsed batch: the rate limit, then the JSON Schema (README,
"Ingress checks").

They run after parsing (so the tenant is known and checked against the topic's
``tenants`` binding) and before any transform or vault write. A record that fails
becomes a :class:`~zoneapp.core.sanitizer.Quarantine` like any other: one quarantine
record plus one violation event, so ``consumed = forwarded + quarantined`` and
``reconcile`` still balance.

Decisions:
- **Rate limit first.** A record that will fail its schema still costs the boundary
  its work (a quarantine and a violation event), so it counts against its tenant.
- **Only records that parsed are limited.** One that failed parsing (not JSON, no
  tenant, ...) has no trustworthy tenant; it is quarantined already.
- **Which bucket.** The tenant id (the body's, or for a tombstone the tenant its topic
  is bound to, else none); with ``per: tenant_and_key`` also a BLAKE2b digest of the
  record key, so no key is held in memory and a huge key costs 16 bytes.
- **delay** waits once per batch, for the longest wait any of its records needs
  (:meth:`IngressGate.admit` returns it; the guard sleeps). Kafka delivers a partition
  in order, so a tenant over its limit also holds back the records behind it in its
  partitions: that is what backpressure on a log is. **The wait is capped**: a record
  that would wait more than ``max_wait`` takes no token and is quarantined as
  ``rate_limited`` (a worker never hangs on a flood; the quarantine says so). A batch
  cancelled mid-wait gives its tokens back (:meth:`IngressGate.give_back`): its records
  were never released and will be redelivered, and charged then.
- **quarantine** quarantines what is over the limit as ``rate_limited``; the detail
  names the limit, never the tenant (the violation's topic and offset find the record).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from zoneapp.core.ratelimit import Charge, RateLimiter, TokenBuckets
from zoneapp.core.sanitizer import Parsed, Problem, Quarantine
from zoneapp.policy.compiled import CompiledBoundary
from zoneapp.policy.ingress import CompiledIngress


@dataclass(slots=True)
class Admitted:
    """A batch after the ingress checks."""

    items: list[Parsed | Quarantine]
    #: Seconds the batch must wait before it is released (``delay``); 0: none.
    wait: float = 0.0
    #: Indices (in the batch) of the records that made it wait.
    delayed: list[int] = field(default_factory=list)
    #: The tokens the batch took (``delay``), returned if it is never released.
    charges: list[Charge] = field(default_factory=list)
    #: Records quarantined because they would have waited more than ``max_wait``.
    too_long: int = 0


class IngressGate:
    """A boundary's ingress checks, with its token buckets (one gate per guard)."""

    def __init__(
        self, ingress: CompiledIngress, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ingress = ingress
        limit = ingress.rate_limit
        self.limit = limit
        self._per_key = limit is not None and limit.per == "tenant_and_key"
        self.buckets: RateLimiter | None = None
        self._limited: dict[str, Problem] = {}
        self._too_long: dict[str, Problem] = {}
        if limit is not None:
            tenants = TokenBuckets(
                limit.tenant_rate,
                limit.tenant_burst,
                limit.max_buckets,
                clock,
                new_buckets=limit.new_buckets,
            )
            keys = (
                TokenBuckets(limit.rate, limit.burst, limit.max_buckets, clock, overflow=False)
                if self._per_key
                else None
            )
            self.buckets = RateLimiter(tenants, keys, clock)
            per_tenant = f"over {limit.tenant_rate:g}/s (burst {limit.tenant_burst})"
            per_key = f"over {limit.rate:g}/s (burst {limit.burst}) per key"
            if self._per_key:
                per_tenant += " per tenant"
            for which, detail in (("tenant", per_tenant), ("key", per_key)):
                self._limited[which] = Problem("rate_limited", detail=detail)
                self._too_long[which] = Problem(
                    "rate_limited", detail=f"{detail}: would wait over {limit.max_wait:g}s"
                )
        self._delay = limit is not None and limit.over_limit == "delay"
        self._max_wait = math.inf if limit is None else limit.max_wait

    @classmethod
    def of(
        cls, boundary: CompiledBoundary, clock: Callable[[], float] = time.monotonic
    ) -> IngressGate | None:
        return None if boundary.ingress is None else cls(boundary.ingress, clock)

    def _bucket_key(self, parsed: Parsed) -> tuple[Hashable, Hashable]:
        """(tenant, key digest); the digest is None unless ``per: tenant_and_key``."""
        tenant = parsed.tenant if parsed.doc is not None else parsed.key_tenant
        if not self._per_key:
            return tenant, None
        key = parsed.record.key
        digest = None if key is None else hashlib.blake2b(key, digest_size=16).digest()
        return tenant, digest

    def give_back(self, admitted: Admitted) -> None:
        """Return the tokens of a batch that was never released (cancelled mid-wait)."""
        if self.buckets is not None:
            self.buckets.give_back(admitted.charges)
        admitted.charges = []

    def admit(self, batch: Sequence[Parsed | Quarantine]) -> Admitted:
        out = Admitted(list(batch))
        items = out.items
        buckets = self.buckets
        schemas = self.ingress.schemas
        for i, p in enumerate(items):
            if not isinstance(p, Parsed):
                continue
            if buckets is not None:
                tenant, key = self._bucket_key(p)
                if self._delay:
                    got = buckets.reserve(tenant, key, self._max_wait)
                    if isinstance(got, str):
                        out.too_long += 1
                        items[i] = Quarantine([self._too_long[got]])
                        continue
                    wait, charges = got
                    out.charges += charges
                    if wait > 0:
                        out.delayed.append(i)
                        out.wait = max(out.wait, wait)
                else:
                    empty = buckets.try_take(tenant, key)
                    if empty is not None:
                        items[i] = Quarantine([self._limited[empty]])
                        continue
            schema = schemas.get(p.record.topic)
            if schema is None or p.doc is None:
                continue
            try:
                if schema.is_valid(p.doc):
                    continue
                failures = schema.failures(p.doc)
            except Exception as exc:  # the validator failed on it: never forward it
                items[i] = Quarantine(
                    [Problem("internal_error", detail=f"schema validator: {type(exc).__name__}")]
                )
                continue
            items[i] = Quarantine(
                [
                    Problem(
                        "schema_invalid",
                        f.field_path,
                        detail=(
                            f"{f.keyword} failed: schema {f.schema_path or '/'}, "
                            f"instance {f.instance_path or '/'}"
                        ),
                    )
                    for f in failures
                ]
                or [Problem("schema_invalid", detail="does not match its schema")]
            )
        return out
