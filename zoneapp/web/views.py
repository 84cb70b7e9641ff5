"""The operators' routes on Faust's web server (see README "Operators' views").

Every route but ``/health*``, the static page and ``/openapi.json`` needs a bearer API
key (``zoneapp.web.auth``); ``/metrics`` too (viewer), unless ``ZONEAPP_METRICS_PUBLIC``
opens it for a scraper that cannot send one: its counters (suppressed fields, detector
hits) are driven by what restricted producers write, a channel out of the restricted
zone to whoever can read them. Statistics and violations are gathered from every worker,
and a single violation is fetched from the worker owning its partition, with signed
worker-to-worker calls (``zoneapp.web.cluster``) that never carry the caller's key; the
internal ``/_cluster/*`` routes answer signed calls only.

The routes are module-level views on :data:`blueprint`; each finds what it reads through
``state_of(request)`` (``zoneapp.web.state``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from faust import web
from faust.web import Request, Response, View

from zoneapp.core.stats import aggregate
from zoneapp.formats import b64url, parse_utc, unb64url, utc_iso
from zoneapp.observability import metrics
from zoneapp.ops.reconcile import Busy, Window
from zoneapp.vault import VaultUnavailableError
from zoneapp.web import openapi
from zoneapp.web.auth import Forbidden, Principal
from zoneapp.web.base import (
    PAGE_HEADERS,
    SECURITY_HEADERS,
    BadRequest,
    InternalView,
    ProtectedView,
)
from zoneapp.web.cluster import Cluster, ClusterAuthError
from zoneapp.web.state import WebState, state_of

__all__ = [
    "MAX_PAGE",
    "BadRequest",
    "blueprint",
    "decode_cursor",
    "encode_cursor",
    "merge_rows",
    "parse_time",
    "violation_filters",
]

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css"}
HEALTH_TIMEOUT = 3.0
#: Largest page of ``GET /violations``.
MAX_PAGE = 500

log = logging.getLogger("zoneapp.web")
blueprint = web.Blueprint("zoneapp")
blueprint.view_name_separator = "."  # view names as before: zoneapp.zones, ...


# -- parameters ------------------------------------------------------------------------


def parse_time(text: str | None, name: str) -> float | None:
    """ISO-8601 (``2026-11-22T10:00:00Z``) or epoch seconds."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_utc(text)
    except ValueError:
        raise BadRequest(f"{name}: use ISO-8601 or epoch seconds") from None


def encode_cursor(event: Mapping[str, Any]) -> str:
    return b64url(orjson.dumps([str(event.get("timestamp", "")), str(event.get("id", ""))]))


def decode_cursor(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    try:
        value = orjson.loads(unb64url(text))
        return (str(value[0]), str(value[1]))
    except (ValueError, TypeError, IndexError, KeyError):
        raise BadRequest("cursor: not a cursor from this API") from None


def violation_filters(query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        raise BadRequest("limit: must be an integer") from None
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit: must be from 1 to {MAX_PAGE}")
    return limit, {
        "zone": query.get("zone") or None,
        "boundary": query.get("boundary") or None,
        "detector": query.get("detector") or None,
        "since": parse_time(query.get("since"), "since"),
        "until": parse_time(query.get("until"), "until"),
        "before": decode_cursor(query.get("cursor")),
    }


# -- statistics ------------------------------------------------------------------------


def merge_rows(*groups: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per (boundary, topic, partition): the newest, if a partition moved."""
    best: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    for rows in groups:
        for row in rows:
            try:
                slot = (str(row["boundary"]), str(row["topic"]), int(row["partition"]))
            except (KeyError, TypeError, ValueError):
                continue
            old = best.get(slot)
            if old is None or float(row.get("updated", 0)) > float(old.get("updated", 0)):
                best[slot] = row
    return list(best.values())


async def cluster_rows(state: WebState) -> tuple[list[Mapping[str, Any]], list[str]]:
    """Every worker's stats rows: (merged rows, workers that did not answer)."""
    bodies, missing = await state.cluster.gather("/_cluster/stats")
    remote = [row for body in bodies for row in body.get("rows", [])]
    return merge_rows(state.stats.local_rows(), remote), missing


def zones_view(
    state: WebState, rows: list[Mapping[str, Any]], missing: list[str], now: float
) -> dict[str, Any]:
    policy = state.runtime.require_policy()
    by_boundary: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_boundary.setdefault(str(row["boundary"]), []).append(row)
    boundaries = []
    for b in policy.boundaries:
        boundaries.append(
            {
                "name": b.name,
                "source_zone": b.source_zone.name,
                "destination_zone": b.destination_zone.name,
                "sources": list(b.sources),
                "destination": b.destination,
                **aggregate(by_boundary.get(b.name, []), now),
            }
        )
    zones = []
    ordered = sorted(policy.zones.values(), key=lambda z: (-int(z.level), z.name))
    for z in ordered:
        out_rows = [
            r for b in policy.boundaries if b.source_zone.name == z.name
            for r in by_boundary.get(b.name, [])
        ]  # fmt: skip
        inbound = [b for b in boundaries if b["destination_zone"] == z.name]
        zones.append(
            {
                "name": z.name,
                "level": str(z.level),
                "rank": int(z.level),
                "topic_prefix": z.topic_prefix,
                "quarantine_topic": z.quarantine_topic,
                "boundaries_out": [b.name for b in policy.boundaries if b.source_zone is z],
                "boundaries_in": [b["name"] for b in inbound],
                "forwarded_in": sum(int(b["forwarded"]) for b in inbound),
                **aggregate(out_rows, now),
            }
        )
    peers = state.cluster.advertised_count()
    return {
        "generated_at": utc_iso(now),
        "policy": {"version": policy.version, "sha256": policy.digest},
        "workers": {"answered": 1 + peers - len(missing), "missing": len(missing)},
        "zones": zones,
        "boundaries": boundaries,
        # This worker's last `/reconcile` answer (verdict and totals), or null.
        "reconcile": state.ledgers.brief(),
    }


async def current_view(state: WebState) -> dict[str, Any]:
    rows, missing = await cluster_rows(state)
    return zones_view(state, rows, missing, time.time())


@blueprint.route("/zones", name="zones")
class Zones(ProtectedView):
    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        return self.ok(await current_view(state))


@blueprint.route("/zones/{zone}", name="zone")
class Zone(ProtectedView):
    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        zone = match["zone"]
        view = await current_view(state)
        for z in view["zones"]:
            if z["name"] == zone:
                z["boundaries"] = [
                    b
                    for b in view["boundaries"]
                    if zone in (b["source_zone"], b["destination_zone"])
                ]
                return self.ok({"generated_at": view["generated_at"], "zone": z})
        return self.reply(404, {"error": "no such zone"})


@blueprint.route("/boundaries/{name}", name="boundary")
class Boundary(ProtectedView):
    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        view = await current_view(state)
        for b in view["boundaries"]:
            if b["name"] == match["name"]:
                return self.ok({"generated_at": view["generated_at"], "boundary": b})
        return self.reply(404, {"error": "no such boundary"})


@blueprint.route("/reconcile", name="reconcile")
class Reconcile(ProtectedView):
    """``faust -A zoneapp reconcile --json`` from a running worker: the ledger of every
    boundary (or those named by ``boundary``), read from the topics. One run at a time
    per worker, reused for 30 s for the same question (ops.reconcile.LedgerRuns)."""

    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        query = request.query
        try:
            window = Window.parse(query.get("since"), query.get("until"), query.get("offsets"))
        except ValueError as exc:
            return self.reply(400, {"error": "bad query", "detail": str(exc)})
        policy = state.runtime.require_policy()
        wanted = [value for key, value in query.items() if key == "boundary"]  # repeatable
        known = {b.name for b in policy.boundaries}
        if any(name not in known for name in wanted):
            return self.reply(404, {"error": "no such boundary"})
        try:
            summary = await state.ledgers.summary(
                policy, state.settings, window, sorted(set(wanted)) or None
            )
        except Busy:
            return self.json(
                {"error": "busy", "detail": "a reconciliation is running on this worker"},
                status=429,
                headers={**SECURITY_HEADERS, "Retry-After": "5"},
            )
        except Exception as exc:  # the broker, a timeout: said by kind, never by content
            log.warning("reconcile failed: %s", type(exc).__name__)
            return self.reply(503, {"error": "reconcile failed", "detail": type(exc).__name__})
        return self.ok(summary)


@blueprint.route("/_cluster/stats", name="cluster.stats")
class ClusterStats(InternalView):
    """This worker's rows, for the worker that asks (signed calls only)."""

    async def answer(self, state: WebState, request: Request, **match: str) -> tuple[int, Any]:
        return 200, {"rows": state.stats.local_rows()}


@blueprint.route("/metrics", name="metrics")
class Metrics(ProtectedView):
    """Viewer key needed, unless ZONEAPP_METRICS_PUBLIC (see the module docstring)."""

    async def get(self, request: Request, **match: str) -> Response:
        state = state_of(request)
        if state.settings.metrics_public:
            return await self.render(state)
        return await self.guarded(request)

    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        return await self.render(state)

    async def render(self, state: WebState) -> Response:
        rows, _missing = await cluster_rows(state)
        # Imported here: zoneapp.web.policy builds on this module's neighbours, not on it.
        from zoneapp.web.policy import policy_metrics

        return self.text(
            metrics.render(rows) + await policy_metrics(state),
            content_type="text/plain; version=0.0.4",
            headers=dict(SECURITY_HEADERS),
        )


# -- violations ------------------------------------------------------------------------

NO_SUCH_VIOLATION = {"error": "no such violation"}


async def query_violations(state: WebState, query: Mapping[str, str]) -> dict[str, Any]:
    """A page of violations from every worker, newest first, with a cursor to the next."""
    limit, filters = violation_filters(query)
    violations = state.violations
    local = violations.local_query(limit + 1, **filters) if violations else []
    params = {k: v for k, v in query.items() if k != "limit"}
    params["limit"] = str(min(MAX_PAGE, limit + 1))
    bodies, missing = await state.cluster.gather("/_cluster/violations", params)
    seen: dict[str, Mapping[str, Any]] = {str(e.get("id")): e for e in local}
    for body in bodies:
        for e in body.get("items", []):
            seen.setdefault(str(e.get("id")), e)
    items = sorted(
        seen.values(),
        key=lambda e: (str(e.get("timestamp", "")), str(e.get("id", ""))),
        reverse=True,
    )
    page = items[:limit]
    return {
        "items": page,
        "count": len(page),
        "next_cursor": encode_cursor(page[-1]) if len(items) > limit and page else None,
        "incomplete": bool(missing),
    }


@blueprint.route("/violations", name="violations")
class Violations(ProtectedView):
    role = "analyst"

    def permits(self, principal: Principal) -> bool:
        return principal.may_view_violations()

    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        return self.ok(await query_violations(state, request.query))


@blueprint.route("/_cluster/violations", name="cluster.violations")
class ClusterViolations(InternalView):
    async def answer(self, state: WebState, request: Request, **match: str) -> tuple[int, Any]:
        try:
            limit, filters = violation_filters(request.query)
        except BadRequest as exc:
            return 400, {"error": "bad request", "detail": str(exc)}
        violations = state.violations
        return 200, {"items": violations.local_query(limit, **filters) if violations else []}


@blueprint.route("/_cluster/violations/{id}", name="cluster.violation")
class ClusterViolation(InternalView):
    async def answer(self, state: WebState, request: Request, **match: str) -> tuple[int, Any]:
        event = state.violations.get(match["id"]) if state.violations else None
        return (404, NO_SUCH_VIOLATION) if event is None else (200, event)


@blueprint.route("/violations/{id}", name="violation")
class Violation(ProtectedView):
    """Answered by the worker owning the event's partition, through a signed call
    (in place of Faust's ``table_route``, which forwards the caller's headers)."""

    role = "analyst"

    def permits(self, principal: Principal) -> bool:
        return principal.may_view_violations()

    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        vid, violations, cluster = match["id"], state.violations, state.cluster
        if violations is None:
            return self.reply(404, NO_SUCH_VIOLATION)
        owner = violations.owner(vid)
        if owner is None or Cluster.same_worker(owner, cluster.own_url):
            event = violations.get(vid)
            return self.reply(404, NO_SUCH_VIOLATION) if event is None else self.ok(event)
        if owner not in cluster.peer_urls():
            return self.unavailable()
        try:
            status, body = await cluster.get(owner, f"/_cluster/violations/{vid}")
        except (ClusterAuthError, aiohttp.ClientError, TimeoutError, ValueError):
            return self.unavailable()
        if status not in (200, 404):
            return self.unavailable()
        return self.json(body, status=status, headers=SECURITY_HEADERS)

    def unavailable(self) -> Response:
        return self.reply(503, {"error": "the worker owning this violation did not answer"})


# -- tokens ----------------------------------------------------------------------------


@blueprint.route("/tokens/{token}", name="token")
class Token(ProtectedView):
    """Metadata of a token (never its value): analysts, and officers of its zone and
    tenant (``officer:<zone>[:<tenant>]``)."""

    role = "analyst"

    def permits(self, principal: Principal) -> bool:
        return True  # decided in answer: an officer's scope needs the token's zone

    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        if not principal.may_view_violations() and not principal.officer_zones():
            raise Forbidden("needs the analyst or an officer role")
        try:
            info = await state.tokens.lookup(match["token"], request.query.get("tenant"))
        except VaultUnavailableError:
            return self.reply(503, {"error": "token vault unavailable"})
        if info is None:
            return self.reply(404, {"error": "no such token"})
        if not principal.may_view_violations() and not any(
            principal.may_resolve(z, info.tenant) for z in info.zones
        ):
            raise Forbidden("officer role of another zone or tenant")
        return self.ok(info.as_json())


# -- health, description, page -----------------------------------------------------------


async def health(state: WebState) -> dict[str, Any]:
    """Readiness: the policy, a broker, the vault and (if this worker needs keys) the HSM."""
    checks: dict[str, str] = {}
    runtime = state.runtime
    checks["policy"] = "ok" if runtime.policy is not None else "not loaded"

    async def check(name: str, probe: Callable[[], Awaitable[None]]) -> None:
        try:
            await asyncio.wait_for(probe(), HEALTH_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable ({type(exc).__name__})"

    async def broker() -> None:
        await broker_probe(runtime.settings.broker_urls())

    probes = [check("broker", broker), check("vault", runtime.vault.ping)]
    if runtime.zones_used:
        probes.append(check("hsm", runtime.provider.ping))
    else:
        checks["hsm"] = "ok (no zone keys needed)"
    await asyncio.gather(*probes)
    ready = all(v.startswith("ok") for v in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}


async def broker_probe(hostports: Iterable[str]) -> None:
    """A TCP connection to any bootstrap broker (the same ones the worker uses)."""
    errors: list[BaseException] = []
    for hostport in hostports:
        host, _, port = hostport.rpartition(":")
        try:
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except (OSError, ValueError) as exc:
            errors.append(exc)
            continue
        writer.close()
        return
    raise ConnectionError(f"no broker reachable ({len(errors)} tried)")


@blueprint.route("/health", name="health")
class Health(View):
    async def get(self, request: Request) -> Response:
        result = await health(state_of(request))
        status = 200 if result["status"] == "ready" else 503
        return self.json(result, status=status, headers=SECURITY_HEADERS)


@blueprint.route("/health/live", name="health.live")
class Live(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "alive"}, headers=SECURITY_HEADERS)


@blueprint.route("/openapi.json", name="openapi")
class OpenApi(View):
    async def get(self, request: Request) -> Response:
        return self.json(openapi.spec(), headers=SECURITY_HEADERS)


@blueprint.route("/", name="page")
class Page(View):
    async def get(self, request: Request) -> Response:
        return self.html(
            (STATIC / "index.html").read_text(encoding="utf-8"), headers=dict(PAGE_HEADERS)
        )


@blueprint.route("/static/{name}", name="static")
class Static(View):
    async def get(self, request: Request, name: str) -> Response:
        path = STATIC / name
        kind = STATIC_TYPES.get(path.suffix)
        if kind is None or "/" in name or name.startswith(".") or not path.is_file():
            return self.json({"error": "not found"}, status=404)
        return self.bytes(path.read_bytes(), content_type=kind, headers=dict(PAGE_HEADERS))
