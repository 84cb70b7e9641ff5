"""Access control on every registered route, in process.

The routes under test are read from the application's router after registration, the
same way a worker registers them, and each must have a rule in :data:`RULES`: a new
route without one fails :func:`test_every_registered_route_has_a_rule`, and is then
called by no other test here, so it cannot slip through.

For each (method, route): no key and an unknown key get 401 with ``WWW-Authenticate``,
every key without the route's role 403, every key with it 200; internal routes answer
signed worker calls only, whatever key is sent. No response but the value of a 200
from ``/detokenize``/``/decrypt`` holds a record value, and none echoes the key.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from zoneapp.web.cluster import HEADER, ClusterSigner

from .conftest import (
    BOGUS,
    CLUSTER_SECRET,
    EMAILS,
    KEYS,
    PHONES,
    MemoryAudit,
    ServeWeb,
    Web,
    build_state,
    no_secret_in,
    registered_routes,
    settings,
    web_application,
)

OFFICERS = ("officer", "officer-acme", "officer-globex", "officer-confidential", "officer-public")
STATS_ROLES = ("viewer", "analyst")
#: Officers of the token's zone and tenant (acme's), and of its zone for every tenant.
ACME_OFFICERS = ("officer", "officer-acme")
NOT_ACME_OFFICERS = ("officer-globex", "officer-confidential", "officer-public")

Target = Callable[[Web], tuple[str, dict[str, str]]]


def reveal_params(web: Web, route: str) -> dict[str, str]:
    if route == "/detokenize":
        return {"zone": "restricted", "tenant": "acme", "token": web.token("acme")}
    return {
        "zone": "restricted",
        "topic": "confidential.orders",
        "field": "customer.phone",
        "ciphertext": web.ciphertext("acme"),
        "tenant": "acme",  # a tenant-scoped officer names its tenant
    }


@dataclass(frozen=True)
class Rule:
    """Who may call a route: ``public`` (anyone), ``signed`` (workers) or ``key``
    (``allowed`` get 200, ``forbidden`` 403); ``target`` is a request that answers 200."""

    kind: str
    target: Target
    allowed: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    #: The 200 body holds the value asked for (``/detokenize``, ``/decrypt``).
    reveals: bool = False
    #: A POST-only command: Faust's HEAD answers 405 for it, before any key is looked at.
    post_only: bool = False

    def __post_init__(self) -> None:
        if self.kind == "key":  # every configured key is named: allowed or forbidden
            assert set(self.allowed) | set(self.forbidden) == set(KEYS), self
            assert not set(self.allowed) & set(self.forbidden), self


def at(path: str, **params: str) -> Target:
    return lambda web: (path, params)


def violation(prefix: str) -> Target:
    return lambda web: (f"{prefix}/{web.violation_ids[0]}", {})


def reveal(route: str) -> Target:
    return lambda web: (route, reveal_params(web, route))


def active_policy(path: str) -> Target:
    """Promote the policy already active: allowed, idempotent, and it writes no file."""
    return lambda web: (path, {"sha256": web.state.runtime.policies.active.sha256})


def key_rule(target: Target, allowed: tuple[str, ...], **kw: bool) -> Rule:
    return Rule("key", target, allowed, tuple(k for k in KEYS if k not in allowed), **kw)


#: Every route the API serves, by path template.
RULES: dict[str, Rule] = {
    "/": Rule("public", at("/")),
    "/health": Rule("public", at("/health")),
    "/health/live": Rule("public", at("/health/live")),
    "/openapi.json": Rule("public", at("/openapi.json")),
    "/static/{name}": Rule("public", at("/static/app.js")),
    "/zones": key_rule(at("/zones"), STATS_ROLES),
    "/zones/{zone}": key_rule(at("/zones/restricted"), STATS_ROLES),
    "/boundaries/{name}": key_rule(at("/boundaries/orders-to-confidential"), STATS_ROLES),
    "/metrics": key_rule(at("/metrics"), STATS_ROLES),
    "/reconcile": key_rule(at("/reconcile"), STATS_ROLES),
    "/violations": key_rule(at("/violations", limit="5"), ("analyst",)),
    "/violations/{id}": key_rule(violation("/violations"), ("analyst",)),
    "/tokens/{token}": key_rule(
        lambda web: ("/tokens/" + quote(web.token("acme"), safe=""), {}),
        ("analyst", *ACME_OFFICERS),
    ),
    "/detokenize": key_rule(reveal("/detokenize"), ACME_OFFICERS, reveals=True),
    "/decrypt": key_rule(reveal("/decrypt"), ACME_OFFICERS, reveals=True),
    "/policy": key_rule(at("/policy"), (*STATS_ROLES, "admin")),
    "/policy/reload": key_rule(at("/policy/reload"), ("admin",), post_only=True),
    "/policy/promote": key_rule(active_policy("/policy/promote"), ("admin",), post_only=True),
    "/shadow": key_rule(at("/shadow"), ("analyst", "admin")),
    "/_cluster/stats": Rule("signed", at("/_cluster/stats")),
    "/_cluster/policy": Rule("signed", at("/_cluster/policy")),
    "/_cluster/policy/reload": Rule("signed", at("/_cluster/policy/reload")),
    "/_cluster/policy/promote": Rule("signed", active_policy("/_cluster/policy/promote")),
    "/_cluster/violations": Rule("signed", at("/_cluster/violations", limit="5")),
    "/_cluster/violations/{id}": Rule("signed", violation("/_cluster/violations")),
}
assert set(RULES["/detokenize"].forbidden) == {"viewer", "analyst", "admin", *NOT_ACME_OFFICERS}


def _routes() -> list[tuple[str, str]]:
    """The registered routes of an application built as the fixtures build it."""
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.json"
        keys.write_text(json.dumps({"keys": []}))
        state, _, _ = build_state(settings(keys, 1), "http://127.0.0.1:1", MemoryAudit())
        return registered_routes(web_application(state))


ROUTES = _routes()


def test_every_registered_route_has_a_rule() -> None:
    paths = {path for _, path in ROUTES}
    assert paths - RULES.keys() == set(), "routes without an access rule"
    assert RULES.keys() - paths == set(), "rules for routes that are not served"
    # Faust's own views stay off: nothing of theirs is served beside ours.
    assert not any(p.startswith(("/table", "/router", "/graph", "/performance")) for p in paths)


def check_headers(headers: dict[str, str]) -> None:
    assert headers.get("Cache-Control") == "no-store"
    assert headers.get("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_access(serve: ServeWeb, method: str, route: str) -> None:
    rule = RULES[route]  # KeyError: a route without a rule
    web: Web = await serve()
    path, params = rule.target(web)
    body: dict[str, str] | None = None
    if method == "POST":  # the reveal routes: the same parameters as a JSON body
        params, body = {}, params
    head = method == "HEAD"
    target = (method, path)

    async def call(who: str | None, *, signed: bool = False) -> tuple[int, dict[str, str], bytes]:
        return await web.call(method, path, who, body=body, signed=signed, params=params)

    if head and rule.post_only:
        assert (await call(None))[0] == 405 and (await call("admin"))[0] == 405
        return

    if rule.kind == "public":
        status, headers, got = await call(None)
        assert status == 200, (target, got[:200])
        check_headers(headers)
        no_secret_in(got, None)
        return

    if rule.kind == "signed":
        for who in (None, BOGUS, *KEYS):
            status, headers, got = await call(who)
            assert status == 401, (target, who)
            check_headers(headers)
            no_secret_in(got, who)
        status, headers, got = await call(None, signed=True)
        assert status == 200, (target, got[:200])
        assert headers.get(HEADER, "").startswith("v1;s=")
        no_secret_in(got, None)
        return

    for who in (None, BOGUS):
        status, headers, got = await call(who)
        assert status == 401, (target, who, got[:200])
        assert headers.get("WWW-Authenticate", "").startswith("Bearer"), headers
        check_headers(headers)
        no_secret_in(got, who)
        if not head:
            assert orjson.loads(got)["error"] == "unauthorized"
    for who in rule.forbidden:
        status, headers, got = await call(who)
        assert status == 403, (target, who, got[:200])
        check_headers(headers)
        no_secret_in(got, who)
        if not head:
            assert orjson.loads(got)["error"] == "forbidden"
    for who in rule.allowed:
        status, headers, got = await call(who)
        assert status == 200, (target, who, got[:200])
        check_headers(headers)
        if rule.reveals and not head:
            expected = EMAILS["acme"] if route == "/detokenize" else json.dumps(PHONES["acme"])
            assert orjson.loads(got) == {"value": expected}
            assert KEYS[who][0].encode() not in got
        else:
            no_secret_in(got, who)


async def test_metrics_can_be_opened_to_scrapers(serve: ServeWeb) -> None:
    """ZONEAPP_METRICS_PUBLIC: /metrics without a key; every other route still needs one."""
    web: Web = await serve(metrics_public=True)
    status, headers, got = await web.call("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b"zoneapp_records_consumed" in got
    assert (await web.call("GET", "/zones"))[0] == 401


async def test_a_signed_reply_verifies_and_a_replayed_call_is_refused(serve: ServeWeb) -> None:
    web: Web = await serve()
    signer = ClusterSigner(CLUSTER_SECRET, web.state.settings.app_id)
    signed = signer.sign_request("GET", web.url, "/_cluster/stats", [])
    for attempt in range(2):
        async with web.client.get("/_cluster/stats", headers={HEADER: signed.header}) as resp:
            got = await resp.read()
            if attempt == 0:
                assert resp.status == 200
                assert signer.verify_response(resp.headers.get(HEADER), signed.nonce, 200, got)
                rows = orjson.loads(got)["rows"]
                assert {r["boundary"] for r in rows} == {"orders-to-confidential"}
            else:
                assert resp.status == 401 and b"replayed" in got


def test_the_openapi_description_matches_the_registered_routes() -> None:
    """Every public (non-internal) route is described, with its methods, and nothing
    described is missing from the router (issue 10, item 5)."""
    from zoneapp.web.openapi import spec

    described = {
        (method.upper(), path)
        for path, item in spec()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete", "patch")
    }
    served = {
        (method, path)
        for method, path in ROUTES
        if method != "HEAD" and not path.startswith(("/_cluster", "/static"))
    }
    assert described == served
