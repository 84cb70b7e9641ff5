"""The consumer-side de-duplication helper, on the headers a boundary really writes."""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures import POLICY
from tests.records import payment, raw
from zoneapp.core.dedupe import Deduplicator
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import load_policy
from zoneapp.vault import MemoryTokenVault

ZONES = ("restricted", "confidential", "internal", "public")


def _outputs_of_a_redelivered_batch() -> list[list[tuple[str, bytes]]]:
    """One batch handled twice, as after a restart before the commit: 6 outputs, 3 unique."""

    async def run() -> MemorySink:
        policy = load_policy(POLICY)
        provider = MemoryKeyProvider()
        await provider.provision(ZONES)
        await provider.open(ZONES)
        sink = MemorySink()
        guard = BoundaryGuard(
            policy,
            policy.boundary("payments-to-confidential"),
            KeyRing(provider, ZONES),
            MemoryTokenVault(),
            sink,
        )
        batch = [raw(payment(payment_id=f"p{i}"), offset=i) for i in range(3)]
        await guard.handle(batch)
        await guard.handle(batch)
        await provider.close()
        return sink

    return [headers for _, _, _, headers in asyncio.run(run()).on("confidential.payments")]


def test_a_redelivered_batch_is_handled_once() -> None:
    outputs = _outputs_of_a_redelivered_batch()
    assert len(outputs) == 6
    dedupe = Deduplicator(window=10)
    handled = [h for h in outputs if dedupe.first_time(h)]
    assert len(handled) == 3 and dedupe.duplicates == 3
    assert [dict(h)["zoneapp-source-offset"] for h in handled] == [b"0", b"1", b"2"]


def test_the_window_is_bounded_and_forgets_the_oldest() -> None:
    dedupe = Deduplicator(window=2)
    ids = [{"zoneapp-boundary": "b", "zoneapp-record-id": f"t/0/{i}"} for i in range(3)]
    assert all(dedupe.first_time(h) for h in ids)
    assert len(dedupe) == 2
    assert dedupe.first_time(ids[0])  # evicted: seen again as new
    assert not dedupe.first_time(ids[2])


def test_the_same_source_record_through_two_boundaries_is_not_a_duplicate() -> None:
    dedupe = Deduplicator()
    one = [("zoneapp-boundary", b"a"), ("zoneapp-record-id", b"t/0/1")]
    other = [("zoneapp-boundary", b"b"), ("zoneapp-record-id", b"t/0/1")]
    assert dedupe.first_time(one) and dedupe.first_time(other)
    assert not dedupe.first_time(one)


def test_records_without_lineage_are_never_dropped() -> None:
    dedupe = Deduplicator()
    assert dedupe.first_time([]) and dedupe.first_time([])
    assert dedupe.first_time({"zoneapp-record-id": None})
    with pytest.raises(ValueError):
        Deduplicator(window=0)
