"""Review of the quarantine and approved release, over HTTP (README "Approved release").

Routes (bearer keys, ``zoneapp.web.auth``):

* ``GET /quarantine``: the quarantined records' metadata, newest first: violation id,
  record id (source topic/partition/offset), boundary, reason, detector, field path, time,
  quarantine topic, and the release that released it, if any; never a value. Analysts
  and officers. Same filters and paging as ``/violations``.
* ``GET /quarantine/{violation_id}``: the record as the boundary would forward it, every
  value a detector flags masked; zone-wide officers of the boundary's source zone
  (``officer:<zone>``, not tenant-scoped: the record of any tenant is shown). Audited.
* ``POST /releases``: file a request (``{"boundary", "violation_ids": [...] | "filter":
  {...}, "reason", "exception": {"allow": {"detector", "path"}} | {"transform": {"name",
  "path", "params"}}}``); zone-wide officers of the source zone.
* ``POST /releases/{id}/approve``: a second zone-wide officer, another person, approves;
  the worker then runs the release (202).
* ``GET /releases`` (``?limit=&cursor=``, newest first, pages of ``PAGE``, at most
  ``MAX_PAGE``), ``GET /releases/{id}``: requests and their outcome per record. Analysts
  see every zone's (as they see every violation); an officer who is not an analyst sees
  the releases of the zones it is a zone-wide officer of, and 404 for another's.

Errors are ``{"error": code, "detail": fixed text}``: 400 malformed, 401/429 as every
route, 403 ``forbidden`` or ``same_officer``, 404 unknown, 409 ``expired``,
``not_pending``, ``already_released`` or ``too_many_open``, 503 the audit or the worker
keeping releases unavailable (also ``unavailable`` when the broker does not answer). No
error carries a value or echoes the caller's text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import faust
import orjson
from aiohttp import web as aioweb
from faust import web
from faust.web import Request, Response
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from zoneapp.release import Officer, ReleaseError, ReleaseException, ReleaseService
from zoneapp.release.model import MAX_RECORDS, Release
from zoneapp.release.service import MAX_PAGE, PAGE
from zoneapp.web.auth import Forbidden, Principal
from zoneapp.web.base import BadRequest, ProtectedView
from zoneapp.web.cluster import Cluster, ClusterAuthError
from zoneapp.web.state import WebState
from zoneapp.web.views import query_violations

log = logging.getLogger(__name__)

blueprint = web.Blueprint("zoneapp.release")
blueprint.view_name_separator = "."

#: The release service the routes use (None: releases are off on this worker).
RELEASES = aioweb.AppKey("zoneapp.web.releases", ReleaseService)
MAX_BODY = 65_536

STATUS = {
    "bad_request": 400,
    "bad_exception": 400,
    "no_records": 400,
    "too_many": 400,
    "wrong_boundary": 400,
    "forbidden": 403,
    "same_officer": 403,
    "unknown_release": 404,
    "unknown_boundary": 404,
    "not_found": 404,
    "no_such_violation": 404,
    "expired": 409,
    "not_pending": 409,
    "already_released": 409,
    "too_many_open": 409,
    "not_approved": 409,
    "audit_unavailable": 503,
    "not_serving": 503,
    "incomplete": 503,
}


def register_release_web(app: faust.App, service: ReleaseService) -> None:
    """Serve the release routes on ``app`` with ``service`` behind them."""
    blueprint.register(app)
    server = app.web
    if not isinstance(server, AiohttpWeb):
        raise TypeError("the release routes need Faust's aiohttp web driver")
    server.web_app[RELEASES] = service


def officer_of(principal: Principal) -> Officer:
    return Officer(
        principal.name,
        principal.person or principal.name,
        frozenset(z for z in principal.zone_officer_zones() if z),
    )


class NotServing(ReleaseError):
    """This worker does not keep the releases; ``owner`` is the one that does, if known."""

    def __init__(self, owner: str | None) -> None:
        super().__init__("not_serving", "releases are kept by another worker of this group")
        self.owner = owner


def service_of(request: Request) -> ReleaseService:
    service = request.app.get(RELEASES)  # type: ignore[attr-defined]
    if service is None:
        raise NotServing(None)
    if not service.store.serving():
        raise NotServing(service.store.owner())
    return service  # type: ignore[no-any-return]


async def body_of(request: Request) -> dict[str, Any]:
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise BadRequest(f"the body is longer than {MAX_BODY} bytes")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def metadata(event: Mapping[str, Any], released: Mapping[str, str]) -> dict[str, Any]:
    """What the review lists of one quarantined record: places and causes, no value."""
    source = event.get("source") or {}
    vid = str(event.get("id"))
    return {
        "violation_id": vid,
        "record_id": f"{source.get('topic')}/{source.get('partition')}/{source.get('offset')}",
        "timestamp": event.get("timestamp"),
        "boundary": event.get("boundary"),
        "zone": source.get("zone"),
        "reason": event.get("reason"),
        "detector": event.get("detector"),
        "field_path": event.get("field_path"),
        "findings": [
            {k: f.get(k) for k in ("reason", "field_path", "detector")}
            for f in event.get("findings") or []
        ],
        "quarantine_topic": event.get("quarantine_topic"),
        "released_by": released.get(vid),
    }


async def find_event(state: WebState, vid: str) -> dict[str, Any] | None:
    """A violation event by id: here, or from the worker owning its partition."""
    violations, cluster = state.violations, state.cluster
    if violations is None:
        return None
    owner = violations.owner(vid)
    if owner is None or Cluster.same_worker(owner, cluster.own_url):
        return violations.get(vid)
    if owner not in cluster.peer_urls():
        return None
    try:
        status, body = await cluster.get(owner, f"/_cluster/violations/{vid}")
    except (ClusterAuthError, aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return body if status == 200 and isinstance(body, dict) else None


class ReleaseView(ProtectedView):
    """A release route: ReleaseError answered with its status, never a value."""

    role = "analyst or officer"

    def permits(self, principal: Principal) -> bool:
        return principal.may_view_violations() or bool(principal.officer_zones())

    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        try:
            return await self.release_answer(state, principal, request, **match)
        except NotServing as exc:  # the worker to ask instead (a URL of the group's, no value)
            body = {"error": exc.code, "detail": str(exc), "owner": exc.owner}
            return self.reply(503, body)
        except ReleaseError as exc:
            return self.reply(STATUS.get(exc.code, 400), {"error": exc.code, "detail": str(exc)})
        except (BadRequest, Forbidden):
            raise
        except Exception as exc:  # the broker, a timeout: said by kind, never by content
            log.warning("release route failed: %s", type(exc).__name__)
            return self.reply(503, {"error": "unavailable", "detail": type(exc).__name__})

    async def release_answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        raise NotImplementedError


def visible_zones(principal: Principal) -> set[str] | None:
    """Zones whose releases the caller may read; None: every zone (an analyst)."""
    return None if principal.may_view_violations() else principal.zone_officer_zones()


def may_read(principal: Principal, release: Release) -> bool:
    zones = visible_zones(principal)
    return zones is None or release.zone in zones


def page_args(query: Mapping[str, str]) -> tuple[int, str | None]:
    raw = query.get("limit")
    try:
        limit = PAGE if raw is None else int(raw)
    except ValueError:
        raise BadRequest(f"limit: 1 to {MAX_PAGE}") from None
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit: 1 to {MAX_PAGE}")
    return limit, query.get("cursor") or None


def officer_only(principal: Principal) -> Officer:
    """The caller as an officer; the service refuses (and audits) one of no zone."""
    return officer_of(principal)


@blueprint.route("/quarantine", name="quarantine")
class QuarantineList(ReleaseView):
    async def release_answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        page = await query_violations(state, request.query)
        service = request.app.get(RELEASES)  # type: ignore[attr-defined]
        released = service.released_ids() if service is not None else {}
        page["items"] = [metadata(e, released) for e in page["items"]]
        return self.ok(page)


@blueprint.route("/quarantine/{id}", name="quarantine.record")
class QuarantinePreview(ReleaseView):
    async def release_answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        officer = officer_only(principal)
        service = service_of(request)
        event = await find_event(state, match["id"])
        if event is None:
            raise ReleaseError("no_such_violation", "no such quarantined record")
        return self.ok(await service.preview(officer, event))


@blueprint.route("/releases", name="releases")
class Releases(ReleaseView):
    async def post(self, request: Request, **match: str) -> Response:
        return await self.guarded(request, **match)

    async def release_answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        service = service_of(request)
        now = service.clock()
        if request.method != "POST":
            limit, cursor = page_args(request.query)
            page = service.page(visible_zones(principal), limit, cursor)
            page["items"] = [r.as_json(now) for r in page["items"]]
            return self.ok(page)
        officer = officer_only(principal)
        body = await body_of(request)
        boundary = body.get("boundary")
        if not isinstance(boundary, str) or not boundary:
            raise BadRequest("boundary: required")
        exception = ReleaseException.from_json(body.get("exception"))
        reason = body.get("reason")
        if not isinstance(reason, str):
            raise BadRequest("reason: required")
        ids, wanted = body.get("violation_ids"), body.get("filter")
        if (ids is None) == (wanted is None):
            raise BadRequest("name the records: violation_ids or filter, not both")
        events: list[dict[str, Any]] = []
        filed: dict[str, Any] | None = None
        if ids is not None:
            if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids):
                raise BadRequest("violation_ids: a list of violation ids")
            if len(ids) > MAX_RECORDS:
                raise ReleaseError("too_many", f"at most {MAX_RECORDS} records per request")
            for vid in dict.fromkeys(ids):
                event = await find_event(state, vid)
                if event is None:
                    raise ReleaseError("no_such_violation", "a listed record is not known")
                events.append(event)
        else:
            if not isinstance(wanted, dict):
                raise BadRequest("filter: an object")
            filed = {
                k: str(wanted[k])
                for k in ("detector", "since", "until", "reason", "field_path")
                if wanted.get(k) is not None
            }
            query: dict[str, str] = {
                k: str(filed[k]) for k in ("detector", "since", "until") if k in filed
            }
            page = await query_violations(
                state, {**query, "boundary": boundary, "limit": str(MAX_RECORDS)}
            )
            if page["next_cursor"] is not None:
                raise ReleaseError("too_many", f"at most {MAX_RECORDS} records per request")
            if page["incomplete"]:
                raise ReleaseError("incomplete", "a worker did not answer; try again")
            events = [
                e
                for e in page["items"]
                if ("reason" not in filed or e.get("reason") == filed["reason"])
                and ("field_path" not in filed or e.get("field_path") == filed["field_path"])
            ]
        release = await service.request(
            officer,
            boundary=boundary,
            events=events,
            exception=exception,
            reason=reason,
            filter=filed,
        )
        return self.ok(release.as_json(now), status=201)


@blueprint.route("/releases/{id}", name="release")
class ReleaseOne(ReleaseView):
    async def release_answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        service = service_of(request)
        release = service.get(match["id"])
        if release is None or not may_read(principal, release):
            raise ReleaseError("unknown_release", "no such release")
        return self.ok(release.as_json(service.clock()))


@blueprint.route("/releases/{id}/approve", name="release.approve")
class ReleaseApprove(ReleaseView):
    async def get(self, request: Request, **match: str) -> Response:
        return self.reply(405, {"error": "method not allowed", "detail": "use POST"})

    async def post(self, request: Request, **match: str) -> Response:
        return await self.guarded(request, **match)

    async def release_answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        officer = officer_only(principal)
        service = service_of(request)
        release = await service.approve(match["id"], officer)
        return self.ok(release.as_json(service.clock()), status=202)
