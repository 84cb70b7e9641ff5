"""The release steps over memory back ends (README "Approved release"): rate limits,
audit text, one release per record, open-request caps, retention and paging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from zoneapp.release import MemoryReleaseStore, ReleaseError, ReleaseException
from zoneapp.release.model import DONE, RELEASED, STILL_QUARANTINED
from zoneapp.release.service import MAX_OPEN_PER_OFFICER, PURGE_EVERY

from .bench import bench, officer

POLICY = """
version: "rl-1"
tenant_id: tenant_id
security_topic: security.violations
zones:
  - {name: restricted, level: restricted}
  - {name: confidential, level: confidential}
dlp: {detectors: [CREDIT_CARD]}
boundaries:
  - name: hr
    source: restricted.hr
    destination: confidential.hr
    ingress:
      rate_limit: {rate: 0.001, burst: 2, over_limit: quarantine}
    fields:
      tenant_id: {transform: keep, class: public}
      note: {transform: keep, class: confidential}
"""
DROP_EXTRA = ReleaseException("transform", "extra", transform="suppress")
CARD = "4111 1111 1111 1111"


async def test_releasing_rate_limited_records_does_not_limit_them_again(tmp_path: Path) -> None:
    docs = [{"tenant_id": "acme", "note": f"n{i}"} for i in range(6)]
    b = await bench(tmp_path, POLICY, "hr", docs)
    assert [e["reason"] for e in b.events] == ["rate_limited"] * 4
    r = await b.service.request(
        officer("alice"), boundary="hr", events=b.events, exception=DROP_EXTRA, reason="over"
    )
    await b.service.approve(r.id, officer("bob"))
    await b.service.wait_idle()
    done = b.service.get(r.id)
    assert done is not None and done.counts()[RELEASED] == 4
    assert len(b.out.on("confidential.hr")) == 4


async def test_an_unknown_boundary_is_audited_without_the_callers_text(tmp_path: Path) -> None:
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme", "note": CARD}])
    for who in (officer("mallory", zones=()), officer("alice")):
        with pytest.raises(ReleaseError) as refused:
            await b.service.request(
                who, boundary=f"hr {CARD}", events=b.events, exception=DROP_EXTRA, reason="x"
            )
        assert CARD not in str(refused.value)
    # No role: forbidden before the boundary is looked up; an officer: unknown boundary.
    assert [e["outcome"] for e in b.audit.events] == [
        "refused:forbidden",
        "refused:unknown_boundary",
    ]
    assert all(e["boundary"] == "(unknown)" for e in b.audit.events)
    assert all(CARD not in str(e) for e in b.audit.events)


async def test_two_pending_requests_for_one_record_release_it_once(tmp_path: Path) -> None:
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme", "note": CARD}])
    allow = ReleaseException("allow", "note", "CREDIT_CARD")
    first, second = [
        await b.service.request(
            officer("alice"), boundary="hr", events=b.events, exception=allow, reason="ok"
        )
        for _ in range(2)
    ]
    await b.service.approve(first.id, officer("bob"))
    await b.service.wait_idle()
    with pytest.raises(ReleaseError) as refused:
        await b.service.approve(second.id, officer("bob"))
    assert refused.value.code == "already_released"
    assert len(b.out.on("confidential.hr")) == 1
    assert b.service.released_ids() == {b.events[0]["id"]: first.id}


async def test_a_run_refuses_records_another_release_holds(tmp_path: Path) -> None:
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme", "note": CARD}])
    allow = ReleaseException("allow", "note", "CREDIT_CARD")
    first, second = [
        await b.service.request(
            officer("alice"), boundary="hr", events=b.events, exception=allow, reason="ok"
        )
        for _ in range(2)
    ]
    # Both approved (rows written by another worker while this one held neither, say).
    await b.service.approve(first.id, officer("bob"))
    row = dict(b.store.data[second.id], state="approved", approved_by="bob", approved_at=1.0)
    b.store.data[second.id] = row
    await b.service.wait_idle()
    await b.service.run(second.id)
    assert len(b.out.on("confidential.hr")) == 1
    late = b.service.get(second.id)
    assert late is not None and late.state == DONE
    assert late.counts()[STILL_QUARANTINED] == 1


async def test_open_requests_per_officer_are_capped(tmp_path: Path) -> None:
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme", "note": CARD}])
    allow = ReleaseException("allow", "note", "CREDIT_CARD")
    for _ in range(MAX_OPEN_PER_OFFICER):
        await b.service.request(
            officer("alice"), boundary="hr", events=b.events, exception=allow, reason="ok"
        )
    with pytest.raises(ReleaseError) as refused:
        await b.service.request(
            officer("alice"), boundary="hr", events=b.events, exception=allow, reason="ok"
        )
    assert refused.value.code == "too_many_open"
    # Another officer still may; expired requests are not open.
    await b.service.request(
        officer("carol"), boundary="hr", events=b.events, exception=allow, reason="ok"
    )
    b.clock.now += 3600
    await b.service.request(
        officer("alice"), boundary="hr", events=b.events, exception=allow, reason="ok"
    )


async def test_done_and_expired_releases_are_purged_after_the_retention(tmp_path: Path) -> None:
    docs = [{"tenant_id": "acme", "note": CARD}, {"tenant_id": "beta", "note": CARD}]
    b = await bench(tmp_path, POLICY, "hr", docs, retention=86_400.0)
    allow = ReleaseException("allow", "note", "CREDIT_CARD")
    svc, alice = b.service, officer("alice")
    done = await svc.request(
        alice, boundary="hr", events=b.events[:1], exception=allow, reason="ok"
    )
    await svc.approve(done.id, officer("bob"))
    await svc.wait_idle()
    assert svc.released_ids() == {b.events[0]["id"]: done.id}
    b.clock.now += 10
    await svc.request(alice, boundary="hr", events=b.events[1:], exception=allow, reason="ok")
    assert await svc.purge() == 0  # nothing old yet
    b.clock.now += 86_400 + 3600 + PURGE_EVERY
    assert await svc.purge() == 2  # the done one and the expired one
    assert b.store.data == {}
    assert svc.released_ids() == {}


async def test_the_listing_pages_and_keeps_to_the_callers_zones(tmp_path: Path) -> None:
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme", "note": CARD}])
    allow = ReleaseException("allow", "note", "CREDIT_CARD")
    ids = []
    for i in range(5):
        b.clock.now += 1
        r = await b.service.request(
            officer(f"o{i}"), boundary="hr", events=b.events, exception=allow, reason="ok"
        )
        ids.append(r.id)
    first = b.service.page(None, 2, None)
    assert [r.id for r in first["items"]] == ids[::-1][:2]
    second = b.service.page(None, 2, first["next_cursor"])
    third = b.service.page(None, 2, second["next_cursor"])
    assert [r.id for r in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["next_cursor"] is None
    assert b.service.page({"confidential"}, 10, None)["items"] == []


async def test_a_forged_copy_under_a_known_violation_id_is_never_used(tmp_path: Path) -> None:
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme", "note": CARD}])
    topic = "restricted.quarantine"
    [(key, value, headers, ts)] = b.quarantine.topics[topic]
    # Someone who may produce to the quarantine topic writes another record under its id.
    b.quarantine.append(topic, key, b'{"tenant_id":"acme","note":"forged"}', headers, ts)
    with pytest.raises(ReleaseError) as refused:
        await b.service.preview(officer("alice"), b.events[0])
    assert refused.value.code == "not_found"
    allow = ReleaseException("allow", "note", "CREDIT_CARD")
    r = await b.service.request(
        officer("alice"), boundary="hr", events=b.events, exception=allow, reason="ok"
    )
    await b.service.approve(r.id, officer("bob"))
    await b.service.wait_idle()
    assert b.out.on("confidential.hr") == []
    # The same record twice (a guard's retry) is still the record.
    b.quarantine.topics[topic] = [(key, value, headers, ts)] * 2
    preview = await b.service.preview(officer("alice"), b.events[0])
    assert preview["forwardable"] is True


async def test_a_copy_from_another_source_place_is_not_previewed(tmp_path: Path) -> None:
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme", "note": CARD}])
    topic = "restricted.quarantine"
    [(key, value, headers, ts)] = b.quarantine.topics[topic]
    moved = [(k, b"7" if k == "zoneapp-source-offset" else v) for k, v in headers]
    b.quarantine.topics[topic] = [(key, value, moved, ts)]
    with pytest.raises(ReleaseError) as refused:
        await b.service.preview(officer("alice"), b.events[0])
    assert refused.value.code == "not_found"


class CountingStore(MemoryReleaseStore):
    """Counts full reads of the rows."""

    def __init__(self) -> None:
        super().__init__()
        self.scans = 0

    def rows(self) -> Iterable[Mapping[str, Any]]:
        self.scans += 1
        return super().rows()


async def test_released_ids_come_from_an_index_not_a_scan_per_call(tmp_path: Path) -> None:
    store = CountingStore()
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme", "note": CARD}], store=store)
    allow = ReleaseException("allow", "note", "CREDIT_CARD")
    r = await b.service.request(
        officer("alice"), boundary="hr", events=b.events, exception=allow, reason="ok"
    )
    await b.service.approve(r.id, officer("bob"))
    await b.service.wait_idle()
    before = store.scans
    for _ in range(5):
        assert b.service.released_ids() == {b.events[0]["id"]: r.id}
    assert store.scans == before
    # A row that arrives by another way (recovery) is seen: the index is rebuilt.
    store.data["other"] = {**store.data[r.id], "id": "other"}
    assert b.service.released_ids() == {b.events[0]["id"]: r.id}
    assert store.scans == before + 1
