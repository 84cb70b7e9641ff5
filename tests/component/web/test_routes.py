"""What the routes answer, in process: counts from the real guard, value-free violations,
the 400/404 answers, readiness, and the page and description."""

from __future__ import annotations

import orjson
from openapi_spec_validator import validate

from zoneapp.web.state import WEB_STATE

from .conftest import ServeWeb, Web, no_secret_in


async def test_zones_and_boundaries_count_what_the_guard_did(served: Web) -> None:
    view = await served.get_json("/zones", "viewer")
    names = [z["name"] for z in view["zones"]]
    assert names == ["restricted", "confidential", "internal", "public"]
    restricted = view["zones"][0]
    assert (restricted["consumed"], restricted["forwarded"], restricted["quarantined"]) == (3, 2, 1)
    assert restricted["detectors"] == {"CREDIT_CARD": 1}
    assert view["workers"] == {"answered": 1, "missing": 0}
    zone = (await served.get_json("/zones/confidential", "viewer"))["zone"]
    assert zone["forwarded_in"] == 2
    assert [b["name"] for b in zone["boundaries"]] == ["orders-to-confidential", "orders-to-public"]
    boundary = await served.get_json("/boundaries/orders-to-confidential", "analyst")
    assert boundary["boundary"]["blocked"] == 1
    for path in ("/zones/nowhere", "/boundaries/nothing"):
        assert (await served.call("GET", path, "viewer"))[0] == 404


async def test_violations_are_value_free_and_validated(served: Web) -> None:
    page = await served.get_json("/violations?limit=5", "analyst")
    [event] = page["items"]
    assert page["count"] == 1 and page["next_cursor"] is None and not page["incomplete"]
    assert event["id"] == served.violation_ids[0] and event["detector"] == "CREDIT_CARD"
    assert event["field_path"] == "notes"
    no_secret_in(orjson.dumps(page), None)
    assert await served.get_json(f"/violations/{event['id']}", "analyst") == event
    assert (await served.call("GET", "/violations/no-such-id", "analyst"))[0] == 404
    assert (await served.get_json("/violations?detector=EMAIL", "analyst"))["items"] == []
    for query in ("limit=0", "limit=x", "since=yesterday", "cursor=%%%"):
        status, headers, body = await served.call("GET", f"/violations?{query}", "analyst")
        assert status == 400 and headers["Cache-Control"] == "no-store", query
        assert orjson.loads(body)["error"] == "bad request"


async def test_reconcile_answers_the_ledger_and_zones_shows_its_verdict(served: Web) -> None:
    assert (await served.get_json("/zones", "viewer"))["reconcile"] is None
    ledger = await served.get_json("/reconcile", "viewer")
    boundaries = {row["boundary"] for row in ledger["partitions"]}
    n = len(boundaries)
    assert n == len(served.state.runtime.require_policy().boundaries)
    # Offset 6 of every source was never handled, offset 5 twice (the in-memory topics).
    assert (ledger["ok"], ledger["missing"], ledger["duplicated"]) == (False, n, n)
    assert (ledger["forwarded"], ledger["quarantined"]) == (7 * n, 2 * n)
    assert ledger["partitions"][0]["missing"] == [[6, 6]]
    brief = (await served.get_json("/zones", "analyst"))["reconcile"]
    assert brief == {k: v for k, v in ledger.items() if k != "partitions"}
    # The same question within the cache time gets the same answer, not a new run.
    assert await served.get_json("/reconcile", "analyst") == ledger
    one = await served.get_json("/reconcile?boundary=orders-to-confidential&offsets=0:6", "viewer")
    assert one["ok"] and one["boundaries"] == ["orders-to-confidential"]
    assert one["window"]["end_offset"] == 6 and one["source_records"] == 6
    for query, status in (("offsets=10", 400), ("since=yesterday", 400), ("boundary=nope", 404)):
        code, headers, _ = await served.call("GET", f"/reconcile?{query}", "viewer")
        assert code == status and headers["Cache-Control"] == "no-store", query


async def test_tokens_answer_404_for_unknown_ones(served: Web) -> None:
    status, _, body = await served.call("GET", "/tokens/tok_doesnotexist", "analyst")
    assert status == 404 and orjson.loads(body) == {"error": "no such token"}


async def test_health_names_each_dependency(served: Web) -> None:
    assert await served.get_json("/health") == {
        "status": "ready",
        "checks": {"policy": "ok", "broker": "ok", "vault": "ok", "hsm": "ok"},
    }


async def test_health_is_not_ready_without_a_broker(serve: ServeWeb) -> None:
    web: Web = await serve(broker="kafka://127.0.0.1:1")
    status, _, body = await web.call("GET", "/health")
    assert status == 503
    assert orjson.loads(body)["checks"]["broker"] == "unavailable (ConnectionError)"


async def test_page_and_description(served: Web) -> None:
    status, headers, body = await served.call("GET", "/")
    assert status == 200 and headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert b'<section id="login" hidden>' in body and b'src="/static/app.js"' in body
    for name in ("..%2Fviews.py", ".hidden", "missing.js", "index.py"):
        assert (await served.call("GET", f"/static/{name}"))[0] == 404, name
    validate(await served.get_json("/openapi.json"))


async def test_the_state_is_the_applications_own(serve: ServeWeb) -> None:
    """Two servers in one process: each route reads its own application's state."""
    first: Web = await serve()
    second: Web = await serve()
    assert first.client.app is not None and second.client.app is not None
    assert first.client.app[WEB_STATE] is first.state
    assert second.client.app[WEB_STATE] is second.state
    assert first.token("acme") != second.token("acme")
    status, _, _ = await second.call("GET", "/tokens/" + first.token("acme"), "analyst")
    assert status == 404


async def test_the_violation_index_keeps_the_newest_per_partition(serve: ServeWeb) -> None:
    web: Web = await serve(violations_keep=1)
    newer = {"id": "v-newer", "timestamp": "2099-01-01T00:00:00.000Z", "boundary": "b"}
    web.violations.store("security.violations", 0, 99, orjson.dumps(newer))
    web.violations.store("security.violations", 0, 100, b"not an event")
    page = await web.get_json("/violations", "analyst")
    assert [e["id"] for e in page["items"]] == ["v-newer"]
    assert (await web.call("GET", f"/violations/{web.violation_ids[0]}", "analyst"))[0] == 404
