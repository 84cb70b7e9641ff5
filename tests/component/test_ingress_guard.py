"""Ingress checks through the real BoundaryGuard, counted as a worker counts them.

The guard runs on the real memory keys and vault and produces into a MemorySink; its
clock and sleep are the test's (a sleep moves the clock), so ``delay`` is proven
without waiting. What it produced is counted by the stats tables' own code
(``MemoryStats``), rendered by ``/metrics``' renderer and ``/zones``' aggregate, and
reconciled from the lineage headers by reconcile's own ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from zoneapp.tables.memory import MemoryStats

from tests.ingress import BOUNDARY, ingress_policy
from tests.records import payment, raw
from zoneapp.core.sanitizer import RawRecord
from zoneapp.core.stats import aggregate
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.observability import metrics
from zoneapp.ops.ledger import Ledger
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.observer import NoObserver
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledPolicy
from zoneapp.vault import CachingTokenVault, MemoryTokenVault

SCHEMA = "schemas/payment.schema.json"
SECRET_TENANT = "tenant-named-after-a-customer"


@pytest.fixture
async def keyring() -> AsyncIterator[KeyRing]:
    provider = MemoryKeyProvider()
    await provider.provision(["restricted", "confidential"])
    await provider.open(["restricted", "confidential"])
    yield KeyRing(provider, ["restricted", "confidential"])
    await provider.close()


@pytest.fixture
def vault() -> MemoryTokenVault:
    return MemoryTokenVault()


class Time:
    """A clock and a sleep that moves it: what the guard waited is recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def guard_of(
    policy: CompiledPolicy,
    keyring: KeyRing,
    vault: MemoryTokenVault,
    t: Time,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> tuple[BoundaryGuard, MemorySink]:
    """A guard on the in-memory back ends whose time is ``t`` (and ``sleep``, if given)."""
    sink = MemorySink()
    guard = BoundaryGuard(
        policy,
        policy.boundary(BOUNDARY),
        keyring,
        CachingTokenVault(vault),
        sink,
        clock=t.clock,
        sleep=sleep or t.sleep,
    )
    return guard, sink


def reconcile(policy: CompiledPolicy, sink: MemorySink, offsets: range) -> dict[str, Any]:
    """Reconcile's ledger over the sink's outputs, as ``faust -A zoneapp reconcile`` reads them."""
    boundary = policy.boundary(BOUNDARY)
    ledger = Ledger()
    row = ledger.partition(BOUNDARY, "restricted.payments", 1)
    row.start, row.committed, row.source = offsets.start, offsets.stop, set(offsets)
    for topic, quarantine in (
        (boundary.destination, False),
        (boundary.source_zone.quarantine_topic, True),
    ):
        for _, _, _, headers in sink.on(topic):
            ledger.output({k: v.decode() for k, v in headers}, quarantine=quarantine)
    return ledger.summary()


async def run(guard: BoundaryGuard, stats: MemoryStats, batch: list[RawRecord]) -> None:
    outcomes = await guard.handle(batch)
    stats.on_batch(BOUNDARY, batch, outcomes, 0.001, guard.delayed)


async def test_schema_invalid_and_rate_limited_records_are_quarantined_and_counted(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    policy = ingress_policy(
        tmp_path,
        {"schema": SCHEMA, "rate_limit": {"rate": 1, "burst": 3, "over_limit": "quarantine"}},
    )
    t = Time()
    guard, sink = guard_of(policy, keyring, vault, t)
    stats = MemoryStats(policy.boundaries)
    batch = [
        raw(payment(tenant_id=SECRET_TENANT, payment_id=f"pay_{i}"), offset=i) for i in range(5)
    ]
    batch[1] = raw(payment(tenant_id=SECRET_TENANT, amount="lots-of-money"), offset=1)
    await run(guard, stats, batch)

    assert t.slept == []  # quarantine mode never waits
    events = [orjson.loads(v or b"") for _, _, v, _ in sink.on("security.violations")]
    assert [(e["reason"], e["source"]["offset"]) for e in events] == [
        ("schema_invalid", 1),
        ("rate_limited", 3),
        ("rate_limited", 4),
    ]
    invalid = events[0]
    assert invalid["field_path"] == "amount"
    assert invalid["findings"][0]["detail"] == (
        "type failed: schema /properties/amount/type, instance /amount"
    )
    assert events[1]["findings"][0]["detail"] == "over 1/s (burst 3)"
    text = orjson.dumps(events).decode()
    assert "lots-of-money" not in text and SECRET_TENANT not in text
    # The quarantine holds the originals, tagged with the reason.
    quarantined = sink.on("restricted.quarantine")
    assert [dict(h)["zoneapp-violation-reason"] for _, _, _, h in quarantined] == [
        b"schema_invalid",
        b"rate_limited",
        b"rate_limited",
    ]
    assert len(sink.on("confidential.payments")) == 2

    # Nothing lost: the guard's totals, the stats rows and reconcile agree.
    g = guard.stats
    assert (g.consumed, g.forwarded, g.quarantined, g.in_flight) == (5, 2, 3, 0)
    summary = reconcile(policy, sink, range(5))
    assert summary["ok"] and (summary["forwarded"], summary["quarantined"]) == (2, 3)
    stats.flush()
    rows = stats.local_rows()
    view = aggregate(rows, t.now)
    assert view["reasons"] == {"rate_limited": 2, "schema_invalid": 1}
    assert (view["consumed"], view["forwarded"], view["quarantined"]) == (5, 2, 3)
    exposition = metrics.render(rows)
    assert SECRET_TENANT not in exposition
    samples = {
        (s.name, s.labels.get("reason")): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.labels.get("boundary") == BOUNDARY
    }
    assert samples[("zoneapp_violations_total", "schema_invalid")] == 1
    assert samples[("zoneapp_violations_total", "rate_limited")] == 2


async def test_delay_holds_the_batch_and_loses_nothing(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    policy = ingress_policy(tmp_path, {"rate_limit": {"rate": 10, "burst": 2}})
    t = Time()
    guard, sink = guard_of(policy, keyring, vault, t)
    stats = MemoryStats(policy.boundaries)
    first = [raw(payment(tenant_id="acme", payment_id=f"pay_{i}"), offset=i) for i in range(6)]
    await run(guard, stats, first)
    # Two pass at once, four wait: the batch is held until the fourth token exists.
    assert t.slept == [pytest.approx(0.4)] and guard.delayed == [2, 3, 4, 5]
    assert len(sink.on("confidential.payments")) == 6 and sink.on("restricted.quarantine") == []
    # Another tenant in the next batch is not held by acme's debt; acme's next record is.
    second = [
        raw(payment(tenant_id="globex"), offset=6),
        raw(payment(tenant_id="acme"), offset=7),
    ]
    await run(guard, stats, second)
    assert t.slept[1] == pytest.approx(0.1) and guard.delayed == [1]
    assert guard.stats.rate_delayed == 5 and guard.stats.rate_buckets == 2
    assert guard.stats.waiting_on is None

    summary = reconcile(policy, sink, range(8))
    assert summary["ok"] and summary["forwarded"] == 8 and summary["quarantined"] == 0
    stats.flush()
    rows = stats.local_rows()
    assert aggregate(rows, t.now)["rate_delayed"] == 5
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(metrics.render(rows))
        for s in family.samples
        if s.labels.get("boundary") == BOUNDARY
    }
    assert samples["zoneapp_records_rate_delayed_total"] == 5
    assert samples["zoneapp_records_forwarded_total"] == 8


async def test_a_long_wait_is_logged_without_the_tenant(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault, caplog: pytest.LogCaptureFixture
) -> None:
    policy = ingress_policy(tmp_path, {"rate_limit": {"rate": 1, "burst": 1}})
    t = Time()
    guard, sink = guard_of(policy, keyring, vault, t)
    batch = [raw(payment(tenant_id=SECRET_TENANT), offset=i) for i in range(7)]
    with caplog.at_level("WARNING", logger="zoneapp.pipeline.guard"):
        await guard.handle(batch)
    assert t.slept == [pytest.approx(6.0)] and len(sink.on("confidential.payments")) == 7
    assert (
        f"boundary {BOUNDARY}: the ingress rate limit holds the batch for 6.0s "
        "(6 records over it); nothing is lost"
    ) in caplog.text
    assert SECRET_TENANT not in caplog.text


async def test_a_batch_stopped_mid_wait_has_produced_nothing(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    policy = ingress_policy(tmp_path, {"rate_limit": {"rate": 1, "burst": 1}})
    waiting = asyncio.Event()
    t = Time()
    hang = True

    async def sleep(seconds: float) -> None:
        if hang:
            waiting.set()
            await asyncio.Event().wait()
        await t.sleep(seconds)

    guard, sink = guard_of(policy, keyring, vault, t, sleep)
    batch = [raw(payment(), offset=i) for i in range(3)]
    task = asyncio.create_task(guard.handle(batch))
    await asyncio.wait_for(waiting.wait(), 10)
    assert guard.stats.waiting_on == "rate limit"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.sent == [] and guard.stats.forwarded == 0
    assert guard.stats.waiting_on is None
    # Redelivered at once: its tokens were given back, so it waits 2 s again, not 5 s.
    hang = False
    await guard.handle(batch)
    assert t.slept == [pytest.approx(2.0)] and len(sink.on("confidential.payments")) == 3


async def test_newcomers_beyond_new_buckets_share_the_overflow_bucket(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    limit = {"rate": 0.001, "burst": 1, "over_limit": "quarantine", "new_buckets": 2}
    policy = ingress_policy(tmp_path, {"rate_limit": limit})
    guard, sink = guard_of(policy, keyring, vault, Time())
    await guard.handle([raw(payment(tenant_id=f"t{i}"), offset=i) for i in range(6)])
    # Two new buckets, then the overflow bucket's one token for the four others.
    assert len(sink.on("confidential.payments")) == 3
    assert guard.stats.rate_buckets == 2 and guard.stats.rate_overflow == 4


async def test_delay_is_capped_by_max_wait_and_says_so(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault, caplog: pytest.LogCaptureFixture
) -> None:
    policy = ingress_policy(tmp_path, {"rate_limit": {"rate": 1, "burst": 1, "max_wait": 2}})
    t = Time()
    guard, sink = guard_of(policy, keyring, vault, t)
    stats = MemoryStats(policy.boundaries)
    batch = [raw(payment(tenant_id=SECRET_TENANT), offset=i) for i in range(5)]
    with caplog.at_level("WARNING", logger="zoneapp.pipeline.guard"):
        await run(guard, stats, batch)
    assert t.slept == [pytest.approx(2.0)]
    assert len(sink.on("confidential.payments")) == 3
    events = [orjson.loads(v or b"") for _, _, v, _ in sink.on("security.violations")]
    assert [e["reason"] for e in events] == ["rate_limited"] * 2
    assert events[0]["findings"][0]["detail"] == "over 1/s (burst 1): would wait over 2s"
    assert (
        f"boundary {BOUNDARY}: 2 records would wait more than 2s for the ingress rate limit "
        "(max_wait); quarantined as rate_limited"
    ) in caplog.text
    assert SECRET_TENANT not in caplog.text
    summary = reconcile(policy, sink, range(5))
    assert summary["ok"] and summary["forwarded"] == 3 and summary["quarantined"] == 2
    stats.flush()
    samples = {
        (s.name, s.labels.get("reason")): s.value
        for family in text_string_to_metric_families(metrics.render(stats.local_rows()))
        for s in family.samples
        if s.labels.get("boundary") == BOUNDARY
    }
    assert samples[("zoneapp_violations_total", "rate_limited")] == 2


class Steps(NoObserver):
    """Records the batch steps the guard reports (what tracing turns into spans)."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: list[tuple[str, dict[str, int | str]]] = []

    def on_step_start(self, name: str, attributes: Mapping[str, int | str]) -> None:
        self.steps.append((name, dict(attributes)))


async def test_the_wait_is_a_batch_step_for_the_observer(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    policy = ingress_policy(tmp_path, {"rate_limit": {"rate": 10, "burst": 1}})
    t, steps = Time(), Steps()
    guard = BoundaryGuard(
        policy,
        policy.boundary(BOUNDARY),
        keyring,
        CachingTokenVault(vault),
        MemorySink(),
        clock=t.clock,
        sleep=t.sleep,
        observer=steps,
    )
    await guard.handle([raw(payment(), offset=i) for i in range(4)])
    assert ("ingress.delay", {"zoneapp.delayed": 3}) in steps.steps
