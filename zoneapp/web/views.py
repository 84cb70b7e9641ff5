"""The operators' views on Faust's web server (see README "Operators' views").

Every endpoint but ``/health*``, the static page and ``/openapi.json`` needs a bearer API
key (``zoneapp.web.auth``); ``/metrics`` too (viewer), unless ``ZONEAPP_METRICS_PUBLIC``
opens it for a scraper that cannot send one: its counters (suppressed fields, detector
hits) are driven by what restricted producers write, a channel out of the restricted
zone to whoever can read them. Statistics and violations are gathered from every worker,
and a single violation is fetched from the worker owning its partition, with signed
worker-to-worker calls (``zoneapp.web.cluster``) that never carry the caller's key; the
internal ``/_cluster/*`` endpoints answer signed calls only.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import faust
import orjson
from faust.web import Request, Response, View
from mode import Service

from zoneapp.core.stats import aggregate
from zoneapp.observability import metrics
from zoneapp.runtime import Runtime
from zoneapp.tables.stats import StatsTables
from zoneapp.tables.violations import MAX_PAGE, ViolationsTable
from zoneapp.vault import VaultUnavailableError
from zoneapp.web import openapi
from zoneapp.web.access import register_access_views
from zoneapp.web.auth import (
    ApiKeys,
    AuthConfigError,
    Authenticator,
    Forbidden,
    Principal,
    RateLimited,
    Unauthorized,
)
from zoneapp.web.cluster import HEADER as CLUSTER_HEADER
from zoneapp.web.cluster import Cluster, ClusterAuthError
from zoneapp.web.tokens import TokenDirectory

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Frame-Options": "DENY",
}
HEALTH_TIMEOUT = 3.0


class BadRequest(Exception):
    pass


def source_of(request: Request) -> str:
    """The peer address of the connection (behind a proxy: the proxy's)."""
    return str(getattr(request, "remote", None) or "unknown")


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_time(text: str | None, name: str) -> float | None:
    """ISO-8601 (``2026-11-22T10:00:00Z``) or epoch seconds."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: use ISO-8601 or epoch seconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def encode_cursor(event: Mapping[str, Any]) -> str:
    raw = orjson.dumps([str(event.get("timestamp", "")), str(event.get("id", ""))])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return (str(value[0]), str(value[1]))
    except (ValueError, TypeError, IndexError, orjson.JSONDecodeError):
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


class WebContext:
    """What the views share: runtime, tables, keys, token directory."""

    def __init__(
        self,
        app: faust.App,
        runtime: Runtime,
        stats: StatsTables,
        violations: ViolationsTable | None,
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.stats = stats
        self.violations = violations
        self.keys: ApiKeys | None = None
        self.keys_error: str | None = None
        self.tokens = TokenDirectory(
            lambda: runtime.vault, runtime.policy, runtime.settings.vault_url
        )
        self.cluster = Cluster.of_app(app, runtime.settings)
        self.gate = Authenticator(
            self._loaded_keys,
            rate=runtime.settings.auth_rate,
            burst=runtime.settings.auth_burst,
        )

    def load_keys(self) -> None:
        try:
            self.keys = ApiKeys.load(self.runtime.settings.api_keys_file)
            self.keys_error = None
        except AuthConfigError as exc:
            self.keys, self.keys_error = None, str(exc)

    def _loaded_keys(self) -> ApiKeys | None:
        if self.keys is None:
            self.load_keys()
        return self.keys

    async def authenticate(self, request: Request) -> Principal:
        """Unauthorized, RateLimited (before any hashing) or the caller (zoneapp.web.auth)."""
        return await self.gate.authenticate(
            request.headers.get("Authorization"), source_of(request)
        )

    # -- statistics ----------------------------------------------------------------

    async def cluster_rows(self) -> tuple[list[Mapping[str, Any]], list[str]]:
        bodies, missing = await self.cluster.gather("/_cluster/stats")
        remote = [row for body in bodies for row in body.get("rows", [])]
        return merge_rows(self.stats.local_rows(), remote), missing

    def zones_view(
        self, rows: list[Mapping[str, Any]], missing: list[str], now: float
    ) -> dict[str, Any]:
        policy = self.runtime.require_policy()
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
        return {
            "generated_at": _iso(now),
            "policy": {"version": policy.version, "sha256": policy.digest},
            "workers": {"answered": 1 + self._peer_count() - len(missing), "missing": len(missing)},
            "zones": zones,
            "boundaries": boundaries,
        }

    def _peer_count(self) -> int:
        return self.cluster.advertised_count()

    # -- violations ----------------------------------------------------------------

    async def query_violations(self, query: Mapping[str, str]) -> dict[str, Any]:
        limit, filters = violation_filters(query)
        local = self.violations.local_query(limit + 1, **filters) if self.violations else []
        params = {k: v for k, v in query.items() if k != "limit"}
        params["limit"] = str(min(MAX_PAGE, limit + 1))
        bodies, missing = await self.cluster.gather("/_cluster/violations", params)
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

    # -- health --------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        checks: dict[str, str] = {}
        runtime = self.runtime
        checks["policy"] = "ok" if runtime.policy is not None else "not loaded"

        async def check(name: str, probe: Callable[[], Awaitable[None]]) -> None:
            try:
                await asyncio.wait_for(probe(), HEALTH_TIMEOUT)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable ({type(exc).__name__})"

        probes = [
            check("broker", self._broker_probe),
            check("vault", runtime.vault.ping),
        ]
        if runtime.zones_used:
            probes.append(check("hsm", runtime.provider.ping))
        else:
            checks["hsm"] = "ok (no zone keys needed)"
        await asyncio.gather(*probes)
        ready = all(v.startswith("ok") for v in checks.values())
        return {"status": "ready" if ready else "not ready", "checks": checks}

    async def _broker_probe(self) -> None:
        """A TCP connection to any bootstrap broker (the same ones the worker uses)."""
        errors: list[BaseException] = []
        for hostport in self.runtime.settings.broker_urls():
            host, _, port = hostport.rpartition(":")
            try:
                _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
            except (OSError, ValueError) as exc:
                errors.append(exc)
                continue
            writer.close()
            return
        raise ConnectionError(f"no broker reachable ({len(errors)} tried)")


def register_web(app: faust.App, runtime: Runtime) -> Callable[..., None] | None:
    """Declare the stats and violations tables and every view; returns the stats hook."""
    from zoneapp.tables.stats import register_stats_tables
    from zoneapp.tables.violations import register_violations_table

    stats, on_batch = register_stats_tables(app, runtime)
    violations = register_violations_table(app, runtime)
    ctx = WebContext(app, runtime, stats, violations)

    @app.service
    class WebKeysService(Service):
        """Loads the API keys file at start: a broken file stops the worker with its error."""

        async def on_start(self) -> None:
            ctx.load_keys()
            if ctx.keys_error:
                log.error("zoneapp cannot start: %s", ctx.keys_error)
                raise SystemExit(2)
            assert ctx.keys is not None
            log.info(
                "web: %d API keys from %s",
                len(ctx.keys.entries),
                runtime.settings.api_keys_file or "(none: every protected view answers 401)",
            )

        async def on_stop(self) -> None:
            stats.flush()
            await ctx.tokens.close()
            await ctx.cluster.close()
            ctx.gate.close()

    class Protected(View):
        """A view that needs a bearer key; 401/403/400 as JSON."""

        def unauthorized(self, detail: str) -> Response:
            return self.json(
                {"error": "unauthorized", "detail": detail},
                status=401,
                headers={**SECURITY_HEADERS, "WWW-Authenticate": 'Bearer realm="zoneapp"'},
            )

        def forbidden(self, detail: str) -> Response:
            return self.json(
                {"error": "forbidden", "detail": detail}, status=403, headers=SECURITY_HEADERS
            )

        def ok(self, value: Any, status: int = 200) -> Response:
            return self.json(value, status=status, headers=SECURITY_HEADERS)

        async def guarded(
            self,
            request: Request,
            allowed: Callable[[Principal], bool],
            role: str,
            handler: Callable[[Principal], Awaitable[Response]],
        ) -> Response:
            try:
                principal = await ctx.authenticate(request)
            except Unauthorized as exc:
                return self.unauthorized(str(exc))
            except RateLimited as exc:
                return self.json(
                    {"error": "rate limited", "detail": str(exc)},
                    status=429,
                    headers={**SECURITY_HEADERS, "Retry-After": str(round(exc.retry_after))},
                )
            if not allowed(principal):
                return self.forbidden(f"needs the {role} role")
            try:
                return await handler(principal)
            except BadRequest as exc:
                return self.json(
                    {"error": "bad request", "detail": str(exc)},
                    status=400,
                    headers=SECURITY_HEADERS,
                )
            except Forbidden as exc:
                return self.forbidden(str(exc))

    class Internal(View):
        """Worker-to-worker endpoints: signed calls only, signed replies (zoneapp.web.cluster)."""

        async def signed(
            self, request: Request, answer: Callable[[], Awaitable[tuple[int, Any]]]
        ) -> Response:
            try:
                nonce = ctx.cluster.verify(request)
            except ClusterAuthError as exc:
                return self.json(
                    {"error": "unauthorized", "detail": f"worker calls only ({exc})"},
                    status=401,
                    headers=SECURITY_HEADERS,
                )
            status, value = await answer()
            body = orjson.dumps(value)
            assert ctx.cluster.signer is not None
            signature = ctx.cluster.signer.sign_response(nonce, status, body)
            return self.bytes(
                body,
                content_type="application/json",
                status=status,
                headers={**SECURITY_HEADERS, CLUSTER_HEADER: signature},
            )

    def may_view_stats(p: Principal) -> bool:
        return p.may_view_stats()

    def may_view_violations(p: Principal) -> bool:
        return p.may_view_violations()

    # -- statistics --------------------------------------------------------------------

    @app.page("/zones", name="zoneapp.zones")
    class Zones(Protected):
        async def get(self, request: Request) -> Response:
            async def run(_: Principal) -> Response:
                rows, missing = await ctx.cluster_rows()
                return self.ok(ctx.zones_view(rows, missing, time.time()))

            return await self.guarded(request, may_view_stats, "viewer", run)

    @app.page("/zones/{zone}", name="zoneapp.zone")
    class Zone(Protected):
        async def get(self, request: Request, zone: str) -> Response:
            async def run(_: Principal) -> Response:
                rows, missing = await ctx.cluster_rows()
                view = ctx.zones_view(rows, missing, time.time())
                for z in view["zones"]:
                    if z["name"] == zone:
                        z["boundaries"] = [
                            b
                            for b in view["boundaries"]
                            if zone in (b["source_zone"], b["destination_zone"])
                        ]
                        return self.ok({"generated_at": view["generated_at"], "zone": z})
                return self.json({"error": "no such zone"}, status=404, headers=SECURITY_HEADERS)

            return await self.guarded(request, may_view_stats, "viewer", run)

    @app.page("/boundaries/{name}", name="zoneapp.boundary")
    class Boundary(Protected):
        async def get(self, request: Request, name: str) -> Response:
            async def run(_: Principal) -> Response:
                rows, missing = await ctx.cluster_rows()
                view = ctx.zones_view(rows, missing, time.time())
                for b in view["boundaries"]:
                    if b["name"] == name:
                        return self.ok({"generated_at": view["generated_at"], "boundary": b})
                return self.json(
                    {"error": "no such boundary"}, status=404, headers=SECURITY_HEADERS
                )

            return await self.guarded(request, may_view_stats, "viewer", run)

    @app.page("/_cluster/stats", name="zoneapp.cluster.stats")
    class ClusterStats(Internal):
        """This worker's rows, for the worker that asks (signed calls only)."""

        async def get(self, request: Request) -> Response:
            async def answer() -> tuple[int, Any]:
                return 200, {"rows": stats.local_rows()}

            return await self.signed(request, answer)

    @app.page("/metrics", name="zoneapp.metrics")
    class Metrics(Protected):
        """Viewer key needed, unless ZONEAPP_METRICS_PUBLIC (see the module docstring)."""

        async def get(self, request: Request) -> Response:
            async def run(_: Principal | None = None) -> Response:
                rows, _missing = await ctx.cluster_rows()
                return self.text(
                    metrics.render(rows),
                    content_type="text/plain; version=0.0.4",
                    headers=dict(SECURITY_HEADERS),
                )

            if runtime.settings.metrics_public:
                return await run()
            return await self.guarded(request, may_view_stats, "viewer", run)

    # -- violations --------------------------------------------------------------------

    @app.page("/violations", name="zoneapp.violations")
    class Violations(Protected):
        async def get(self, request: Request) -> Response:
            async def run(_: Principal) -> Response:
                return self.ok(await ctx.query_violations(request.query))

            return await self.guarded(request, may_view_violations, "analyst", run)

    @app.page("/_cluster/violations", name="zoneapp.cluster.violations")
    class ClusterViolations(Internal):
        async def get(self, request: Request) -> Response:
            async def answer() -> tuple[int, Any]:
                try:
                    limit, filters = violation_filters(request.query)
                except BadRequest as exc:
                    return 400, {"error": "bad request", "detail": str(exc)}
                items = violations.local_query(limit, **filters) if violations else []
                return 200, {"items": items}

            return await self.signed(request, answer)

    if violations is not None:
        table = violations.table
        no_such = {"error": "no such violation"}

        @app.page("/_cluster/violations/{id}", name="zoneapp.cluster.violation")
        class ClusterViolation(Internal):
            async def get(self, request: Request, id: str) -> Response:
                async def answer() -> tuple[int, Any]:
                    event = violations.get(id)
                    return (404, no_such) if event is None else (200, event)

                return await self.signed(request, answer)

        @app.page("/violations/{id}", name="zoneapp.violation")
        class Violation(Protected):
            """Answered by the worker owning the event's partition, through a signed call
            (in place of Faust's ``table_route``, which forwards the caller's headers)."""

            async def get(self, request: Request, id: str) -> Response:
                async def run(_: Principal) -> Response:
                    try:
                        owner = str(app.router.key_store(table.name, id)).rstrip("/")
                    except KeyError:
                        owner = None
                    if owner is None or Cluster.same_worker(owner, ctx.cluster.own_url):
                        event = violations.get(id)
                        if event is None:
                            return self.json(no_such, status=404, headers=SECURITY_HEADERS)
                        return self.ok(event)
                    if owner not in ctx.cluster.peer_urls():
                        return self.unavailable()
                    try:
                        status, body = await ctx.cluster.get(owner, f"/_cluster/violations/{id}")
                    except (ClusterAuthError, aiohttp.ClientError, TimeoutError, ValueError):
                        return self.unavailable()
                    if status not in (200, 404):
                        return self.unavailable()
                    return self.json(body, status=status, headers=SECURITY_HEADERS)

                return await self.guarded(request, may_view_violations, "analyst", run)

            def unavailable(self) -> Response:
                return self.json(
                    {"error": "the worker owning this violation did not answer"},
                    status=503,
                    headers=SECURITY_HEADERS,
                )

    # -- tokens ------------------------------------------------------------------------

    @app.page("/tokens/{token}", name="zoneapp.token")
    class Token(Protected):
        async def get(self, request: Request, token: str) -> Response:
            async def run(principal: Principal) -> Response:
                if not principal.may_view_violations() and not principal.officer_zones():
                    raise Forbidden("needs the analyst or an officer role")
                tenant = request.query.get("tenant")
                try:
                    info = await ctx.tokens.lookup(token, tenant)
                except VaultUnavailableError:
                    return self.json(
                        {"error": "token vault unavailable"}, status=503, headers=SECURITY_HEADERS
                    )
                if info is None:
                    return self.json(
                        {"error": "no such token"}, status=404, headers=SECURITY_HEADERS
                    )
                if not principal.may_view_violations() and not any(
                    principal.may_resolve(z, info.tenant) for z in info.zones
                ):
                    raise Forbidden("officer role of another zone or tenant")
                return self.ok(info.as_json())

            def anyone(p: Principal) -> bool:
                return True

            return await self.guarded(request, anyone, "analyst", run)

    # -- health, description, page -------------------------------------------------------

    register_access_views(app, runtime, ctx.authenticate)

    @app.page("/health", name="zoneapp.health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            result = await ctx.health()
            status = 200 if result["status"] == "ready" else 503
            return self.json(result, status=status, headers=SECURITY_HEADERS)

    @app.page("/health/live", name="zoneapp.health.live")
    class Live(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "alive"}, headers=SECURITY_HEADERS)

    @app.page("/openapi.json", name="zoneapp.openapi")
    class OpenApi(View):
        async def get(self, request: Request) -> Response:
            return self.json(openapi.spec(), headers=SECURITY_HEADERS)

    @app.page("/", name="zoneapp.page")
    class Page(View):
        async def get(self, request: Request) -> Response:
            return self.html(
                (STATIC / "index.html").read_text(encoding="utf-8"), headers=dict(PAGE_HEADERS)
            )

    @app.page("/static/{name}", name="zoneapp.static")
    class Static(View):
        async def get(self, request: Request, name: str) -> Response:
            path = STATIC / name
            kind = STATIC_TYPES.get(path.suffix)
            if kind is None or "/" in name or name.startswith(".") or not path.is_file():
                return self.json({"error": "not found"}, status=404)
            return self.bytes(path.read_bytes(), content_type=kind, headers=dict(PAGE_HEADERS))

    hook: Callable[..., None] = on_batch
    return hook
