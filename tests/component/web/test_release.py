"""Approved release from quarantine through the real routes, in process (README
"Approved release"): review, preview, request, the two-person rule, release, expiry.

What stands behind the routes is real: the records are quarantined by the real
``BoundaryGuard`` (its quarantine and security outputs kept in memory), the release re-runs
a real guard with the exception applied, on memory keys and vault; only the topics are
memory (``MemoryQuarantine``, ``MemorySink``) and the releases table a dict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from zoneapp.tables.memory import MemoryViolations

from zoneapp.core.sanitizer import RawRecord
from zoneapp.keys import build_key_admin
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.release import (
    RELEASE_HEADER,
    MemoryQuarantine,
    MemoryReleaseStore,
    Officer,
    ReleaseService,
)
from zoneapp.stack import free_port
from zoneapp.web.release import register_release_web
from zoneapp.web.routes import FAUST_VIEWS_OFF, register_web

from .conftest import CARD, EMAILS, PHONES, MemoryAudit, build_state, order, settings

BOUNDARY = "orders-to-confidential"
#: name -> (key, roles, person). Two restricted officers; the first one's name in another
#: case, and a second key of the first person, are configured as entries of their own.
KEYS: dict[str, tuple[str, list[str], str | None]] = {
    "viewer": ("zk_rel-viewer-0123456789abcdefghijkl", ["viewer"], None),
    "analyst": ("zk_rel-analyst-0123456789abcdefghijk", ["analyst"], None),
    "alice": ("zk_rel-alice-0123456789abcdefghijklm", ["officer:restricted"], None),
    "Alice": ("zk_rel-alice-upper-0123456789abcdefgh", ["officer:restricted"], None),
    "alice-phone": ("zk_rel-alice-phone-0123456789abcdefg", ["officer:restricted"], "alice"),
    "bob": ("zk_rel-bob-0123456789abcdefghijklmnop", ["officer:restricted"], None),
    "carol-acme": ("zk_rel-carol-acme-0123456789abcdefgh", ["officer:restricted:acme"], None),
    "dave-conf": ("zk_rel-dave-conf-0123456789abcdefghi", ["officer:confidential"], None),
}
VALUES = (*EMAILS.values(), *PHONES.values(), CARD, CARD.replace(" ", ""))
PHONE_NOTE = f"call me on {PHONES['acme']}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ReleaseWeb:
    client: TestClient[web.Request, web.Application]
    service: ReleaseService
    audit: MemoryAudit
    sink: MemorySink
    clock: Clock
    #: kind ("phone", "card") -> violation id.
    violations: dict[str, str]
    quarantined: MemoryQuarantine
    index: MemoryViolations
    runtime: Any

    async def call(
        self, method: str, path: str, who: str | None, body: Any = None
    ) -> tuple[int, Any, bytes]:
        headers = {"Authorization": f"Bearer {KEYS[who][0]}"} if who else {}
        data = None if body is None else json.dumps(body).encode()
        async with self.client.request(method, path, headers=headers, data=data) as resp:
            raw = await resp.read()
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = None
            return resp.status, parsed, raw

    def released(self) -> list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
        return self.sink.on("confidential.orders")


def no_value_in(raw: bytes) -> None:
    for value in VALUES:
        assert value.encode() not in raw, value
    for key, *_ in KEYS.values():
        assert key.encode() not in raw


@pytest.fixture
async def rweb(tmp_path: Path, broker: int) -> AsyncIterator[ReleaseWeb]:
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "name": name,
                        "sha256": hashlib.sha256(k.encode()).hexdigest(),
                        "roles": roles,
                        **({"person": person} if person else {}),
                    }
                    for name, (k, roles, person) in KEYS.items()
                ]
            }
        )
    )
    port = free_port()
    audit = MemoryAudit()
    state, _, violations = build_state(settings(keys, broker), f"http://127.0.0.1:{port}", audit)
    assert state.load_keys() is None
    runtime = state.runtime
    admin = build_key_admin(
        runtime.settings.keys_url, runtime.settings.pkcs11_pin, development=True
    )
    await admin.provision(sorted(runtime.zones_used))
    await admin.close()
    await runtime.open_keys()
    quarantine = MemoryQuarantine()
    ids = await quarantine_two(runtime, violations, quarantine)
    sink, clock = MemorySink(), Clock()
    service = ReleaseService(
        runtime.require_policy(),
        store=MemoryReleaseStore(),
        quarantine=quarantine,
        sink=sink,
        keyring=lambda: runtime.keyring,
        vault=lambda: runtime.vault,
        audit=audit,
        ttl=3600,
        open_keys=runtime.open_keys,
        clock=clock,
    )
    app = faust.App(
        state.settings.app_id,
        broker=state.settings.broker,
        autodiscover=False,
        store="memory://",
        **FAUST_VIEWS_OFF,
    )
    register_web(app, state)
    register_release_web(app, service)
    server: Any = app.web
    server.init_server()
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(server.web_app, host="127.0.0.1", port=port)
    )
    await client.start_server()
    yield ReleaseWeb(client, service, audit, sink, clock, ids, quarantine, violations, runtime)
    await client.close()
    await state.close()
    await runtime.close()


async def quarantine_two(
    runtime: Any, violations: MemoryViolations, quarantine: MemoryQuarantine
) -> dict[str, str]:
    """Two orders quarantined by the real guard: a phone number and a card in ``notes``."""
    policy = runtime.require_policy()
    boundary = policy.boundary(BOUNDARY)
    sink = MemorySink()
    guard = BoundaryGuard(policy, boundary, runtime.keyring, runtime.vault, sink)
    docs = [order("acme", 7, notes=PHONE_NOTE), order("globex", 8, notes=f"card {CARD}")]
    records = [
        RawRecord("restricted.orders", 1, 40 + i, b'"k"', orjson.dumps(d), [("src", b"x")], 5)
        for i, d in enumerate(docs)
    ]
    await guard.handle(records)
    assert sink.on(boundary.destination) == []
    for topic, key, value, headers in sink.on("restricted.quarantine"):
        quarantine.append(topic, key, value, headers, 5)
    ids = {}
    for offset, sent in enumerate(sink.on(policy.security_topic)):
        violations.store(policy.security_topic, 0, offset, sent[2])
        event = orjson.loads(sent[2] or b"")
        ids["phone" if event["detector"] == "PHONE" else "card"] = event["id"]
    assert set(ids) == {"phone", "card"}
    return ids


def allow_phone(ids: list[str]) -> dict[str, Any]:
    return {
        "boundary": BOUNDARY,
        "violation_ids": ids,
        "reason": "the customer asked us to call back",
        "exception": {"allow": {"detector": "PHONE", "path": "notes"}},
    }


async def test_analysts_review_metadata_only(rweb: ReleaseWeb) -> None:
    status, page, raw = await rweb.call("GET", "/quarantine", "analyst")
    assert status == 200
    items = {i["violation_id"]: i for i in page["items"]}
    phone = items[rweb.violations["phone"]]
    assert phone["record_id"] == "restricted.orders/1/40"
    assert (phone["boundary"], phone["reason"], phone["detector"], phone["field_path"]) == (
        BOUNDARY,
        "dlp",
        "PHONE",
        "notes",
    )
    assert phone["timestamp"] and phone["quarantine_topic"] == "restricted.quarantine"
    assert phone["released_by"] is None
    no_value_in(raw)
    status, page, _ = await rweb.call("GET", "/quarantine?detector=CREDIT_CARD", "alice")
    assert status == 200 and [i["detector"] for i in page["items"]] == ["CREDIT_CARD"]
    assert (await rweb.call("GET", "/quarantine", "viewer"))[0] == 403
    assert (await rweb.call("GET", "/quarantine", None))[0] == 401
    assert (await rweb.call("GET", "/releases", "viewer"))[0] == 403


async def test_an_officer_previews_the_record_with_flagged_values_masked(rweb: ReleaseWeb) -> None:
    path = f"/quarantine/{rweb.violations['phone']}"
    status, body, raw = await rweb.call("GET", path, "alice")
    assert status == 200 and body["forwardable"] is True, body
    value = body["record"]["value"]
    assert value["notes"] == "[masked:PHONE]"
    assert value["order_id"] == "ord-acme-7"
    assert value["customer"]["email"].startswith("tok_")  # as forwarded: tokenized
    no_value_in(raw)
    # Neither analysts, tenant-scoped officers nor officers of another zone see it.
    for who, code in (("analyst", 403), ("carol-acme", 403), ("dave-conf", 403), (None, 401)):
        status, _, raw = await rweb.call("GET", path, who)
        assert status == code, who
        no_value_in(raw)
    assert (await rweb.call("GET", "/quarantine/no-such-id", "alice"))[0] == 404
    previews = [e for e in rweb.audit.events if e["action"] == "release.preview"]
    # Every authenticated attempt is audited, the refused ones too.
    assert [(e["who"], e["outcome"]) for e in previews] == [
        ("alice", "allowed"),
        ("analyst", "refused:forbidden"),
        ("carol-acme", "refused:forbidden"),
        ("dave-conf", "refused:forbidden"),
    ]
    assert {e["violation_id"] for e in previews} == {rweb.violations["phone"]}


async def test_a_release_needs_a_second_officer_then_forwards_with_the_release_id(
    rweb: ReleaseWeb,
) -> None:
    ids = [rweb.violations["phone"], rweb.violations["card"]]
    status, release, raw = await rweb.call("POST", "/releases", "alice", allow_phone(ids))
    assert status == 201, release
    assert release["state"] == "pending" and release["requested_by"] == "alice"
    assert release["violation_ids"] == ids
    rid = release["id"]
    approve = f"/releases/{rid}/approve"
    # One officer alone: the same key, a case variant of the name, a second key of the
    # same person. None of them approves, nothing is produced.
    for who in ("alice", "Alice", "alice-phone"):
        status, body, raw = await rweb.call("POST", approve, who)
        assert (status, body["error"]) == (403, "same_officer"), who
        no_value_in(raw)
    # Neither may roles that are not zone-wide officers of the source zone.
    for who in ("analyst", "carol-acme", "dave-conf"):
        assert (await rweb.call("POST", approve, who))[0] == 403, who
    await rweb.service.wait_idle()
    assert rweb.released() == []
    assert (await rweb.call("GET", f"/releases/{rid}", "analyst"))[1]["state"] == "pending"

    status, body, _ = await rweb.call("POST", approve, "bob")
    assert status == 202 and body["approved_by"] == "bob"
    await rweb.service.wait_idle()
    status, done, raw = await rweb.call("GET", f"/releases/{rid}", "analyst")
    assert status == 200 and done["state"] == "done", done
    assert done["counts"] == {"released": 1, "quarantined": 1, "not_found": 0}
    phone, card = done["results"][ids[0]], done["results"][ids[1]]
    assert phone == {"outcome": "released", "record_id": "restricted.orders/1/40"}
    # The card is still caught: the exception allows PHONE only; the release says why.
    assert card["outcome"] == "quarantined" and card["record_id"] == "restricted.orders/1/41"
    assert [(p["reason"], p["field_path"], p["detector"]) for p in card["problems"]] == [
        ("dlp", "notes", "CREDIT_CARD")
    ]
    no_value_in(raw)

    [(_, key, value, headers)] = rweb.released()
    names = dict(headers)
    assert names[RELEASE_HEADER] == rid.encode()
    assert names["zoneapp-record-id"] == b"restricted.orders/1/40"
    assert names["zoneapp-boundary"] == BOUNDARY.encode()
    assert "src" not in names  # default-deny on headers still applies
    doc = orjson.loads(value or b"")
    assert doc["notes"] == PHONE_NOTE  # the exception let this one detector through
    assert doc["customer"]["email"].startswith("tok_")  # every other rule still applies
    assert EMAILS["acme"] not in (value or b"").decode() and key != b'"k"'

    # The review shows which release released it; the card is listed, not released.
    page = (await rweb.call("GET", "/quarantine", "analyst"))[1]
    released = {i["violation_id"]: i["released_by"] for i in page["items"]}
    assert released == {ids[0]: rid, ids[1]: None}
    # A released record is not released twice.
    status, body, _ = await rweb.call("POST", "/releases", "bob", allow_phone([ids[0]]))
    assert (status, body["error"]) == (409, "already_released")
    # Approving again does nothing.
    assert (await rweb.call("POST", approve, "bob"))[0] == 409

    steps = [(e["action"], e["outcome"], e["who"]) for e in rweb.audit.events]
    assert steps[:9] == [
        ("release.request", "allowed", "alice"),
        ("release.approve", "refused:same_officer", "alice"),
        ("release.approve", "refused:same_officer", "Alice"),
        ("release.approve", "refused:same_officer", "alice-phone"),
        ("release.approve", "refused:forbidden", "analyst"),
        ("release.approve", "refused:forbidden", "carol-acme"),
        ("release.approve", "refused:forbidden", "dave-conf"),
        ("release.approve", "allowed", "bob"),
        ("release.run", "done", "bob"),
    ]
    run = next(e for e in rweb.audit.events if e["action"] == "release.run")
    assert (run["released"], run["still_quarantined"], run["not_found"]) == (1, 1, 0)
    no_value_in(orjson.dumps(rweb.audit.events))


async def test_a_transform_exception_and_a_filter(rweb: ReleaseWeb) -> None:
    body = {
        "boundary": BOUNDARY,
        "filter": {"detector": "CREDIT_CARD"},
        "reason": "notes are not needed downstream",
        "exception": {"transform": {"name": "suppress", "path": "notes"}},
    }
    status, release, _ = await rweb.call("POST", "/releases", "bob", body)
    assert status == 201 and release["violation_ids"] == [rweb.violations["card"]]
    assert release["filter"] == {"detector": "CREDIT_CARD"}
    assert (await rweb.call("POST", f"/releases/{release['id']}/approve", "alice"))[0] == 202
    await rweb.service.wait_idle()
    done = (await rweb.call("GET", f"/releases/{release['id']}", "bob"))[1]
    assert done["counts"]["released"] == 1
    [(_, _, value, headers)] = rweb.released()
    doc = orjson.loads(value or b"")
    assert "notes" not in doc and doc["order_id"] == "ord-globex-8"
    assert dict(headers)[RELEASE_HEADER] == release["id"].encode()


async def test_requests_expire(rweb: ReleaseWeb) -> None:
    status, release, _ = await rweb.call(
        "POST", "/releases", "alice", allow_phone([rweb.violations["phone"]])
    )
    assert status == 201
    rweb.clock.now += 3600
    status, body, _ = await rweb.call("POST", f"/releases/{release['id']}/approve", "bob")
    assert (status, body["error"]) == (409, "expired")
    listed = (await rweb.call("GET", "/releases", "analyst"))[1]["items"]
    assert [r["state"] for r in listed] == ["expired"]
    await rweb.service.wait_idle()
    assert rweb.released() == []
    assert ("release.approve", "refused:expired") in [
        (e["action"], e["outcome"]) for e in rweb.audit.events
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"boundary": BOUNDARY, "reason": "r", "exception": {"allow": {"path": "notes"}}}, 400),
        (
            {
                "boundary": BOUNDARY,
                "violation_ids": ["x"],
                "reason": "r",
                "exception": {"allow": {"path": "notes", "detector": "PHONE"}},
            },
            404,
        ),
        (
            {
                "boundary": "nowhere",
                "violation_ids": [],
                "reason": "r",
                "exception": {"allow": {"path": "notes", "detector": "PHONE"}},
            },
            404,
        ),
        (
            {
                "boundary": BOUNDARY,
                "filter": {"detector": "EMAIL"},
                "reason": "r",
                "exception": {"allow": {"path": "notes", "detector": "PHONE"}},
            },
            400,  # no record matches
        ),
        (
            {
                "boundary": BOUNDARY,
                "filter": {},
                "reason": "r",
                "exception": {"allow": {"path": "notes", "detector": "US_SSN"}},  # not enabled
            },
            400,
        ),
        (
            {
                "boundary": BOUNDARY,
                "filter": {},
                "reason": "r",
                "exception": {"transform": {"name": "mask", "path": "customer.email.x"}},
            },
            400,
        ),
        (
            {
                "boundary": BOUNDARY,
                "filter": {},
                "reason": "r",
                "exception": {
                    "transform": {"name": "mask", "path": "notes", "params": {"keep_last": 999}}
                },
            },
            400,
        ),
    ],
)
async def test_bad_requests_are_refused_without_values(
    rweb: ReleaseWeb, body: dict[str, Any], code: int
) -> None:
    status, answer, raw = await rweb.call("POST", "/releases", "alice", body)
    assert status == code, answer
    assert set(answer) == {"error", "detail"}
    no_value_in(raw)
    assert rweb.service.all() == []


async def test_malformed_bodies_and_roles(rweb: ReleaseWeb) -> None:
    async with rweb.client.post(
        "/releases",
        data=b"{not json " + CARD.encode(),
        headers={"Authorization": f"Bearer {KEYS['alice'][0]}"},
    ) as resp:
        raw = await resp.read()
        assert resp.status == 400 and CARD.encode() not in raw
    # Tenant-scoped officers and analysts cannot file.
    for who in ("carol-acme", "analyst", "dave-conf"):
        status, _, _ = await rweb.call(
            "POST", "/releases", who, allow_phone([rweb.violations["phone"]])
        )
        assert status == 403, who
    assert (await rweb.call("GET", "/releases/nope", "analyst"))[0] == 404
    assert (await rweb.call("GET", "/releases/nope/approve", "bob"))[0] == 405


async def test_an_approved_release_left_unfinished_runs_on_resume(rweb: ReleaseWeb) -> None:
    """A worker stopped between the approval and the run: the next one resumes it."""
    status, release, _ = await rweb.call(
        "POST", "/releases", "alice", allow_phone([rweb.violations["phone"]])
    )
    assert status == 201
    service = rweb.service
    stored = service.get(release["id"])
    assert stored is not None
    service.book.approve(stored, Officer("bob", "bob", frozenset({"restricted"})))
    await service.store.put(stored.to_row())  # approved, never run
    assert rweb.released() == []
    assert service.resume() == 1 and service.resume() == 0  # not started twice
    await service.wait_idle()
    assert service.resume() == 0
    done = (await rweb.call("GET", f"/releases/{release['id']}", "analyst"))[1]
    assert done["state"] == "done" and done["counts"]["released"] == 1
    assert len(rweb.released()) == 1


async def test_a_worker_not_keeping_the_releases_answers_503(rweb: ReleaseWeb) -> None:
    class Elsewhere(MemoryReleaseStore):
        def serving(self) -> bool:
            return False

        def owner(self) -> str | None:
            return "http://worker-2:6066"

    rweb.service.store = Elsewhere()
    for method, path in (("GET", "/releases"), ("POST", "/releases/x/approve")):
        status, body, _ = await rweb.call(method, path, "bob")
        assert (status, body["error"], body["owner"]) == (
            503,
            "not_serving",
            "http://worker-2:6066",
        )


async def test_a_record_blocked_for_another_reason_previews_as_its_problems(
    rweb: ReleaseWeb,
) -> None:
    policy = rweb.runtime.require_policy()
    boundary = policy.boundary(BOUNDARY)
    sink = MemorySink()
    guard = BoundaryGuard(policy, boundary, rweb.runtime.keyring, rweb.runtime.vault, sink)
    doc = {**order("acme", 9), "customer": CARD}  # an object expected: wrong_type
    await guard.handle([RawRecord("restricted.orders", 1, 60, None, orjson.dumps(doc), [], 5)])
    [(topic, key, value, headers)] = sink.on("restricted.quarantine")
    rweb.quarantined.append(topic, key, value, headers, 5)
    [(_, _, event, _)] = sink.on(policy.security_topic)
    rweb.index.store(policy.security_topic, 0, 9, event)
    vid = orjson.loads(event or b"")["id"]
    status, body, raw = await rweb.call("GET", f"/quarantine/{vid}", "bob")
    assert status == 200 and body["forwardable"] is False and "record" not in body
    assert [(p["reason"], p["field_path"]) for p in body["problems"]] == [
        ("wrong_type", "customer")
    ]
    no_value_in(raw)


async def test_a_record_gone_from_the_quarantine_topic_is_not_found(rweb: ReleaseWeb) -> None:
    status, release, _ = await rweb.call(
        "POST", "/releases", "alice", allow_phone([rweb.violations["phone"]])
    )
    assert status == 201
    rweb.quarantined.topics.clear()  # retention deleted it meanwhile
    assert (await rweb.call("POST", f"/releases/{release['id']}/approve", "bob"))[0] == 202
    await rweb.service.wait_idle()
    done = (await rweb.call("GET", f"/releases/{release['id']}", "bob"))[1]
    assert done["state"] == "done" and done["counts"] == {
        "released": 0,
        "quarantined": 0,
        "not_found": 1,
    }
    assert rweb.released() == []


async def test_without_an_audit_no_step_happens(rweb: ReleaseWeb) -> None:
    class Broken:
        async def write(self, event: dict[str, Any]) -> None:
            raise ConnectionError("audit.access unreachable")

    good = rweb.service.audit
    status, release, _ = await rweb.call(
        "POST", "/releases", "alice", allow_phone([rweb.violations["phone"]])
    )
    rweb.service.audit = Broken()
    status, body, _ = await rweb.call(
        "POST", "/releases", "alice", allow_phone([rweb.violations["card"]])
    )
    assert (status, body["error"]) == (503, "audit_unavailable")
    assert len(rweb.service.all()) == 1
    status, body, _ = await rweb.call("POST", f"/releases/{release['id']}/approve", "bob")
    assert (status, body["error"]) == (503, "audit_unavailable")
    status, _, _ = await rweb.call("GET", f"/quarantine/{rweb.violations['phone']}", "bob")
    assert status == 503
    await rweb.service.wait_idle()
    assert rweb.released() == []
    assert rweb.service.get(release["id"]).state == "pending"  # type: ignore[union-attr]
    rweb.service.audit = good


async def test_a_request_carrying_a_value_is_refused(rweb: ReleaseWeb) -> None:
    """The request's own text is kept in the table and shown to analysts: no values."""
    body = allow_phone([rweb.violations["phone"]])
    status, answer, raw = await rweb.call(
        "POST", "/releases", "alice", {**body, "reason": f"card {CARD} is a test card"}
    )
    assert (status, answer["error"]) == (400, "bad_request") and CARD.encode() not in raw
    filtered = {**body, "filter": {"field_path": EMAILS["acme"]}}
    del filtered["violation_ids"]
    status, answer, raw = await rweb.call("POST", "/releases", "alice", filtered)
    assert status == 400 and EMAILS["acme"].encode() not in raw
    assert rweb.service.all() == []
    assert [e["outcome"] for e in rweb.audit.events if e["action"] == "release.request"] == [
        "refused:bad_request",
        "refused:bad_request",
    ]


async def test_an_exception_that_no_longer_applies_releases_nothing(rweb: ReleaseWeb) -> None:
    """Filed under one policy, run under another where the exception is invalid (here: a
    detector the policy no longer enables): done, every record still quarantined, why."""
    status, release, _ = await rweb.call(
        "POST", "/releases", "alice", allow_phone([rweb.violations["phone"]])
    )
    assert status == 201
    store = rweb.service.store
    row = dict(store.get(release["id"]) or {})
    row["exception"] = {"allow": {"detector": "US_SSN", "path": "notes"}}
    await store.put(row)
    assert (await rweb.call("POST", f"/releases/{release['id']}/approve", "bob"))[0] == 202
    await rweb.service.wait_idle()
    done = (await rweb.call("GET", f"/releases/{release['id']}", "bob"))[1]
    assert done["state"] == "done" and done["counts"]["quarantined"] == 1
    [result] = done["results"].values()
    assert result["problems"][0]["reason"] == "release_refused"
    assert result["problems"][0]["detail"] == "bad_exception"
    assert rweb.released() == []
    assert ("release.run", "refused:bad_exception") in [
        (e["action"], e["outcome"]) for e in rweb.audit.events
    ]


async def test_a_quarantine_that_cannot_be_read_answers_503(rweb: ReleaseWeb) -> None:
    class Unreachable(MemoryQuarantine):
        async def find(self, topic: str, violation_ids: Any) -> Any:
            raise TimeoutError(f"reading {topic} took too long")

    rweb.service.quarantine = Unreachable()
    status, body, _ = await rweb.call("GET", f"/quarantine/{rweb.violations['phone']}", "bob")
    assert (status, body) == (503, {"error": "unavailable", "detail": "TimeoutError"})


async def test_a_keyed_transform_exception_gets_its_key(rweb: ReleaseWeb) -> None:
    """``hash`` at a path the policy keeps: the release's guard derives the HMAC key."""
    body = {
        "boundary": BOUNDARY,
        "violation_ids": [rweb.violations["card"]],
        "reason": "downstream joins on the note, never reads it",
        "exception": {"transform": {"name": "hash", "path": "notes"}},
    }
    status, release, _ = await rweb.call("POST", "/releases", "alice", body)
    assert status == 201, release
    assert (await rweb.call("POST", f"/releases/{release['id']}/approve", "bob"))[0] == 202
    await rweb.service.wait_idle()
    done = (await rweb.call("GET", f"/releases/{release['id']}", "bob"))[1]
    assert done["counts"]["released"] == 1, done
    [(_, _, value, _)] = rweb.released()
    notes = orjson.loads(value or b"")["notes"]
    assert isinstance(notes, str) and CARD not in notes and "card" not in notes


async def test_the_release_listing_pages_and_keeps_to_the_callers_zones(rweb: ReleaseWeb) -> None:
    made = []
    for kind in ("phone", "card"):
        rweb.clock.now += 1
        status, body, _ = await rweb.call(
            "POST", "/releases", "alice", allow_phone([rweb.violations[kind]])
        )
        assert status == 201, body
        made.append(body["id"])
    status, page, _ = await rweb.call("GET", "/releases?limit=1", "analyst")
    assert status == 200 and [r["id"] for r in page["items"]] == [made[1]]
    status, page, _ = await rweb.call(
        "GET", f"/releases?limit=1&cursor={page['next_cursor']}", "analyst"
    )
    assert [r["id"] for r in page["items"]] == [made[0]] and page["next_cursor"] is None
    assert (await rweb.call("GET", "/releases?limit=0", "analyst"))[0] == 400
    # An officer of another zone sees none of them, not even by id.
    status, page, _ = await rweb.call("GET", "/releases", "dave-conf")
    assert status == 200 and page["items"] == []
    assert (await rweb.call("GET", f"/releases/{made[0]}", "dave-conf"))[0] == 404
    status, page, _ = await rweb.call("GET", "/releases", "bob")
    assert {r["id"] for r in page["items"]} == set(made)
