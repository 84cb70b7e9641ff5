"""The policy routes in process: /shadow's answer and who gets it, reload and promote over
HTTP, the reload metric, and the fan-out to a peer with signed calls.

Two workers share an app id and a cluster secret and advertise each other; records go
through the real guards (``BoundaryGuards``, the agents' batch loop) on memory back ends.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from zoneapp.tables.memory import MemoryStats, MemoryViolations

from zoneapp.core.sanitizer import RawRecord
from zoneapp.keys import build_key_admin
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.policies import BoundaryGuards
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledBoundary, CompiledPolicy
from zoneapp.runtime import Runtime
from zoneapp.stack import free_port
from zoneapp.web.cluster import Cluster
from zoneapp.web.state import WebState

from .conftest import (
    EMAILS,
    KEYS,
    PHONES,
    POLICY,
    MemoryAudit,
    Web,
    order,
    settings,
    web_application,
)

BOUNDARY = "orders-to-confidential"
BASE = POLICY.read_text()
#: The candidate drops notes and blocks fields the policy does not name.
CANDIDATE = (
    BASE.replace(
        "      notes: {transform: keep, class: confidential}", "      notes: {transform: suppress}"
    )
    .replace(
        "    subject_id: customer.email\n    key:",
        "    subject_id: customer.email\n    unclassified: block\n    key:",
    )
    .replace('version: "component-1"', 'version: "component-2"')
)
assert CANDIDATE.count("suppress") == 1 and "unclassified: block" in CANDIDATE
INVALID = BASE.replace(
    "      order_id: {transform: keep, class: internal}\n      customer.email",
    "      order_id: {transform: keep, class: restricted}\n      customer.email",
)
assert INVALID != BASE
#: Where the refusal points: the line of the bad rule.
BAD_LINE = 1 + INVALID.splitlines().index("      order_id: {transform: keep, class: restricted}")
DATA_KEY = "ssn 219456789"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Cell:
    """A mutable list of peer URLs, so two workers can advertise each other."""

    def __init__(self) -> None:
        self.urls: list[str] = []


async def worker(
    folder: Path, keys_file: Path, broker: int, app_id: str, peers: Cell
) -> tuple[Web, BoundaryGuards]:
    folder.mkdir()
    policy_file = folder / "policy.yaml"
    candidate_file = folder / "candidate.yaml"
    policy_file.write_text(BASE)
    candidate_file.write_text(CANDIDATE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = settings(
        keys_file,
        broker,
        app_id=app_id,
        policy_path=str(policy_file),
        policy_candidate=str(candidate_file),
    )
    runtime = Runtime.from_settings(config)
    assert runtime.policy is not None, runtime.policy_error
    stats = MemoryStats(runtime.boundaries)
    violations = MemoryViolations(config.violations_keep, runtime.policy)
    audit = MemoryAudit()
    state = WebState.build(
        runtime,
        stats=stats,
        violations=violations,
        cluster=Cluster(config, lambda: url, lambda: peers.urls),
        audit=audit,
    )
    assert state.load_keys() is None
    admin = build_key_admin(config.keys_url, None, development=True)
    await admin.provision(sorted(runtime.zones_used))
    await admin.close()
    await runtime.open_keys()
    sink = MemorySink()

    def build(policy: CompiledPolicy, boundary: CompiledBoundary) -> BoundaryGuard:
        return BoundaryGuard(policy, boundary, runtime.keyring, runtime.vault, sink)

    guards = BoundaryGuards(runtime.policies, BOUNDARY, build)
    await runtime.policies.load_candidate("start")
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(web_application(state), host="127.0.0.1", port=port)
    )
    await client.start_server()
    return Web(client, state, audit, stats, violations, url), guards


@pytest.fixture
async def pair(keys_file: Path, broker: int, tmp_path: Path) -> AsyncIterator[list[Any]]:
    peers_a, peers_b = Cell(), Cell()
    a = await worker(tmp_path / "a", keys_file, broker, "component-policy", peers_a)
    b = await worker(tmp_path / "b", keys_file, broker, "component-policy", peers_b)
    peers_a.urls, peers_b.urls = [b[0].url], [a[0].url]
    yield [a, b]
    for served, _ in (a, b):
        await served.client.close()
        await served.state.close()
        await served.state.runtime.close()


def records(first: int) -> list[RawRecord]:
    docs = [
        order("acme", first),
        {**order("globex", first + 1), DATA_KEY: "x"},
        order("acme", first + 2, notes=f"call {PHONES['acme']}"),
    ]
    return [
        RawRecord("restricted.orders", 0, first + i, None, orjson.dumps(d), [], None)
        for i, d in enumerate(docs)
    ]


async def post(served: Web, path: str, who: str, body: dict[str, str]) -> tuple[int, Any]:
    status, _, got = await served.call("POST", path, who, body=body)
    return status, orjson.loads(got)


async def test_shadow_answers_counts_and_places_of_both_workers(pair: list[Any]) -> None:
    (a, guards_a), (_, guards_b) = pair
    await guards_a.handle(records(0))
    await guards_b.handle(records(10))
    status, _, got = await a.call("GET", "/shadow", "analyst")
    assert status == 200
    body = orjson.loads(got)
    assert body["active"] == {"version": "component-1", "sha256": sha(BASE)}
    assert body["candidate"]["sha256"] == sha(CANDIDATE)
    assert body["workers"] == {"shadowing": 2, "other": 0, "missing": 0}
    [report] = body["boundaries"]
    assert report["boundary"] == BOUNDARY and report["records"] == 6
    assert report["would_quarantine"]["records"] == 2
    assert report["would_quarantine"]["because"] == [
        {"reason": "unclassified_field", "path": "*", "detector": None, "records": 2}
    ]
    assert report["would_forward"]["records"] == 2
    assert report["would_forward"]["despite"] == [
        {"reason": "dlp", "path": "notes", "detector": "PHONE", "records": 2}
    ]
    assert report["fields"]["would_drop"] == {"notes": 2}
    for value in [*EMAILS.values(), *PHONES.values(), DATA_KEY, "219456789"]:
        assert value.encode() not in got, value
    for who in ("admin",):
        assert (await a.call("GET", "/shadow", who))[0] == 200
    for who in ("viewer", "officer", "officer-acme"):
        assert (await a.call("GET", "/shadow", who))[0] == 403
    assert (await a.call("GET", "/shadow"))[0] == 401
    assert (await a.call("GET", "/shadow", KEYS["admin"][0] + "x"))[0] == 401


async def test_promote_over_http_reaches_the_peer_and_survives_a_restart(pair: list[Any]) -> None:
    (a, guards_a), (b, guards_b) = pair
    status, body = await post(a, "/policy/promote", "analyst", {"sha256": sha(CANDIDATE)})
    assert status == 403  # only an admin changes the policy
    status, body = await post(a, "/policy/promote", "admin", {"sha256": "00" * 32})
    assert status == 409 and {w["status"] for w in body["workers"]} == {"refused"}
    status, body = await post(a, "/policy/promote", "admin", {"sha256": "not hex"})
    assert status == 400
    status, body = await post(a, "/policy/promote", "admin", {"sha256": sha(CANDIDATE)})
    assert status == 200 and body["ok"] is True and body["missing"] == []
    assert [w["worker"] for w in body["workers"]] == [a.url, b.url]
    assert {w["status"] for w in body["workers"]} == {"applied"}
    for served, guards in ((a, guards_a), (b, guards_b)):
        runtime = served.state.runtime
        assert Path(runtime.settings.policy_path).read_text() == CANDIDATE
        assert runtime.require_policy().digest == sha(CANDIDATE)
        assert Runtime.from_settings(runtime.settings).require_policy().digest == sha(CANDIDATE)
        assert guards.guard.policy.digest == sha(CANDIDATE)
    status, _, got = await a.call("GET", "/policy", "viewer")
    state = orjson.loads(got)
    assert status == 200 and state["consistent"] is True
    assert {w["active"]["version"] for w in state["workers"]} == {"component-2"}
    assert {w["candidate"] is None for w in state["workers"]} == {True}
    assert orjson.loads((await a.call("GET", "/shadow", "admin"))[2])["candidate"] is None


async def test_a_bad_reload_is_refused_everywhere_and_raises_the_metric(pair: list[Any]) -> None:
    (a, _), (b, _) = pair
    for served in (a, b):
        Path(served.state.runtime.settings.policy_path).write_text(INVALID)
    status, body = await post(a, "/policy/reload", "admin", {})
    assert status == 409 and body["ok"] is False
    assert [w["status"] for w in body["workers"]] == ["refused", "refused"]
    for served, w in zip((a, b), body["workers"], strict=True):
        assert served.state.runtime.settings.policy_path in w["error"]  # file, line, problem
        assert f"line {BAD_LINE}, boundaries[0].fields.order_id: 'keep' would move" in w["error"]
        assert w["active"]["sha256"] == sha(BASE)
    status, _, got = await a.call("GET", "/metrics", "viewer")
    text = got.decode()
    assert status == 200
    for url in (a.url, b.url):
        assert f'zoneapp_policy_reload_failed{{worker="{url}"}} 1' in text
        assert f'zoneapp_policy_info{{worker="{url}",version="component-1"' in text
    # Fixed on one worker only: that one applies it, the other still refuses.
    Path(a.state.runtime.settings.policy_path).write_text(CANDIDATE)
    status, body = await post(a, "/policy/reload", "admin", {})
    assert status == 409 and [w["status"] for w in body["workers"]] == ["applied", "refused"]
    status, _, got = await a.call("GET", "/policy", "admin")
    assert orjson.loads(got)["consistent"] is False
    errors = [w["last_error"] for w in orjson.loads(got)["workers"]]
    assert errors[0] is None and f"line {BAD_LINE}" in errors[1]
    status, _, got = await a.call("GET", "/policy", "viewer")
    viewed = orjson.loads(got)["workers"]
    assert [w["last_error"] for w in viewed] == [None, "(the error text needs the admin role)"]
    assert [w["reload_failed"] for w in viewed] == [False, True]


async def test_a_peer_that_does_not_answer_is_reported(pair: list[Any], tmp_path: Path) -> None:
    (a, _), (b, _) = pair
    await b.client.close()
    status, body = await post(a, "/policy/reload", "admin", {})
    assert status == 409 and body["missing"] == [b.url]
    assert [w["status"] for w in body["workers"]] == ["unchanged"]
    shutil.rmtree(tmp_path / "b")


async def test_token_classes_of_a_reloaded_policy_are_known_and_old_ones_kept(
    pair: list[Any],
) -> None:
    """Token metadata for officers: a class the new policy tokenizes is found in its zone,
    and tokens of a class it no longer uses keep theirs."""
    (a, _), _ = pair
    Path(a.state.runtime.settings.policy_path).write_text(
        BASE.replace(
            "      customer.email: {transform: tokenize, class: restricted, field_class: email}",
            "      customer.email: {transform: tokenize, class: restricted, field_class: mail}",
        )
    )
    assert (await a.state.runtime.policies.reload("test")).status == "applied"
    assert a.state.tokens.zones["mail"] == {"restricted"}
    assert a.state.tokens.zones["email"] == {"restricted"}


async def test_a_refused_candidate_is_named_to_admins_only(pair: list[Any]) -> None:
    (a, _), _ = pair
    Path(a.state.runtime.settings.policy_candidate or "").write_text(INVALID)
    result = await a.state.runtime.policies.reload("test")
    assert result.candidate_error is not None and f"line {BAD_LINE}" in result.candidate_error
    admin = orjson.loads((await a.call("GET", "/shadow", "admin"))[2])
    analyst = orjson.loads((await a.call("GET", "/shadow", "analyst"))[2])
    assert f"line {BAD_LINE}" in admin["candidate_error"]
    assert analyst["candidate_error"] == "(the error text needs the admin role)"
    assert admin["candidate"]["sha256"] == sha(CANDIDATE)  # the previous one stays shadowed
