"""The bench's fair baseline and stage profile run zoneapp's own guard (bench/fair.py,
bench/profiled.py): what they forward, and that the profile accounts for every
nanosecond of the batch it timed."""

from __future__ import annotations

import pytest

from bench.fair import IdentitySanitizer, fair_guard
from bench.profiled import STAGES, ProfileObserver, per_record_us, profiled_guard
from tests.fixtures import POLICY
from tests.records import CARD, payment, raw
from tests.unit.pipeline.test_observer import RecordingObserver, without_trace
from zoneapp.core.sanitizer import RawRecord
from zoneapp.keys.envelope import KeyRing
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.vault import MemoryTokenVault

BOUNDARY = "payments-to-confidential"


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy(POLICY)


def records() -> list[RawRecord]:
    return [
        raw(payment(), offset=0),
        raw(payment(notes=f"card {CARD}"), offset=1),  # zoneapp quarantines this one
        raw(b"{broken", offset=2),
    ]


async def test_the_fair_guard_forwards_every_record_unchanged(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    sink = MemorySink()
    boundary = policy.boundary(BOUNDARY)
    guard = fair_guard(policy, boundary, keyring, vault, sink)
    assert isinstance(guard.sanitizer, IdentitySanitizer)
    batch = records()
    await guard.handle(batch)
    assert [(t, k, v) for t, k, v, _ in sink.sent] == [
        (boundary.destination, r.key, r.value) for r in batch
    ]
    for (_, _, _, headers), r in zip(sink.sent, batch, strict=True):
        assert headers[:-1] == list(r.headers)
        assert headers[-1][0] == "traceparent"  # the guard's fresh trace, as for zoneapp
    assert guard.stats.forwarded == 3 and guard.stats.quarantined == 0


async def test_the_profiled_guard_changes_nothing_and_accounts_for_the_batch(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    plain_sink, profiled_sink = MemorySink(), MemorySink()
    boundary = policy.boundary(BOUNDARY)
    inner = RecordingObserver()
    await BoundaryGuard(policy, boundary, keyring, vault, plain_sink).handle(records())
    guard = profiled_guard(policy, boundary, keyring, vault, profiled_sink, observer=inner)
    await guard.handle(records())
    assert without_trace(profiled_sink.sent) == without_trace(plain_sink.sent)
    assert inner.calls and inner.calls[0][0] == "batch_start"  # every hook reaches it
    profile = guard.observer.observer  # the guard calls it through SafeObserver
    assert isinstance(profile, ProfileObserver)
    snap = profile.snapshot()
    assert snap["records"] == 3 and snap["batches"] == 1
    ns = snap["ns"]
    assert set(ns) == set(STAGES)
    assert all(v >= 0 for v in ns.values())
    assert ns["parse"] > 0 and ns["DLP"] > 0 and ns["vault+produce"] > 0
    # One batch: the stages inside handle() add up to it exactly; nothing is outside it.
    inside = sum(v for k, v in ns.items() if k != "framework+consume")
    assert inside == profile.handle_ns
    assert ns["framework+consume"] == 0
    us = per_record_us(snap)
    assert us["total"] == pytest.approx(sum(ns.values()) / 3 / 1000)
    assert us["records per batch"] == 3
