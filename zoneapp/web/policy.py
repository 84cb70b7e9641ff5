"""Policy routes: the active and candidate policy of every worker, reload, promote, shadow.

* ``GET /policy`` (viewer, analyst or admin): each worker's active generation (version,
  SHA-256, when and by what it was loaded), candidate, and last reload error (its text
  only for admin: it quotes the policy, tenant ids of a binding included).
* ``POST /policy/reload`` (admin): the worker asked re-reads its policy files, then asks
  every peer to do the same with a signed call (``/_cluster/policy/reload``); the answer
  lists each worker's result. 200 when every worker applied it or already had it, 409
  when one refused (its error names the file, line and problem) or did not answer.
* ``POST /policy/promote`` (admin), JSON ``{"sha256": "<candidate's SHA-256>"}``: the same
  fan-out, each worker making its shadowed candidate with exactly that SHA-256 active and
  writing it over its policy file (``zoneapp.pipeline.policies``). A worker already on it
  answers ``unchanged``, so a retried promote is harmless.
* ``GET /shadow`` (analyst or admin): what the candidate would do differently, summed over
  every worker that shadows the same candidate against the same active policy: counts and
  places in policy terms, never a value (``zoneapp.pipeline.shadow``). Its places and
  detector counts say as much as ``/violations`` does, hence the analyst role.

The internal routes are signed GETs (``zoneapp.web.cluster``): a signature is good for
one call to one worker within 30 s, and reload and promote are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, ClassVar

import orjson
from faust import web
from faust.web import Request, Response, View

from zoneapp.observability.policy import render
from zoneapp.pipeline.policies import REFUSED, ReloadResult
from zoneapp.pipeline.shadow import merge_reports
from zoneapp.web.auth import Principal
from zoneapp.web.base import BadRequest, InternalView, ProtectedView
from zoneapp.web.state import WebState

log = logging.getLogger("zoneapp.web")
blueprint = web.Blueprint("zoneapp")
blueprint.view_name_separator = "."

SHA256 = re.compile(r"[0-9a-f]{64}")
#: What a viewer or analyst sees instead of a reload error's text.
ADMIN_ONLY = "(the error text needs the admin role)"
#: The name a command's trigger carries: the key entry's name (never the key), printable.
_NAME = re.compile(r"[^A-Za-z0-9_.:@-]")


def _by(text: str) -> str:
    return _NAME.sub("_", text)[:64]


def worker_state(state: WebState) -> dict[str, Any]:
    """This worker's policy state and shadow reports (the signed ``/_cluster/policy``)."""
    switch = state.runtime.policies
    return {
        "worker": state.cluster.own_url,
        **switch.state(),
        "shadow": [r.as_json() for _, r in sorted(switch.reports.items())],
    }


async def ask_peers(
    state: WebState, path: str, params: dict[str, str] | None = None
) -> tuple[list[tuple[str, int, Any]], list[str]]:
    """A signed GET on every peer: ([(url, status, body)], URLs that did not answer)."""
    cluster = state.cluster
    if cluster.signer is None:
        return [], ["?"] * cluster.advertised_count()
    peers = cluster.peer_urls()
    results = await asyncio.gather(
        *(cluster.get(url, path, params) for url in peers), return_exceptions=True
    )
    answered: list[tuple[str, int, Any]] = []
    missing: list[str] = ["?"] * max(0, cluster.advertised_count() - len(peers))
    for url, result in zip(peers, results, strict=True):
        if isinstance(result, BaseException) or not isinstance(result[1], dict):
            why = type(result).__name__ if isinstance(result, BaseException) else "bad body"
            log.warning("web: worker %s did not answer %s: %s", url, path, why)
            missing.append(url)
        else:
            answered.append((url, result[0], result[1]))
    return answered, missing


async def every_worker_state(state: WebState) -> tuple[list[dict[str, Any]], list[str]]:
    answered, missing = await ask_peers(state, "/_cluster/policy")
    return [worker_state(state), *(body for _, status, body in answered if status == 200)], missing


def _outcome(worker: str, result: ReloadResult) -> dict[str, Any]:
    return {"worker": worker, **result.as_json()}


class CommandView(ProtectedView):
    """A POST-only admin command (GET is not served)."""

    role: ClassVar[str] = "admin"
    get = View.get  # type: ignore[assignment]  # faust serves only the methods a view overrides

    def permits(self, principal: Principal) -> bool:
        return principal.may_change_policy()

    async def post(self, request: Request, **match: str) -> Response:
        return await self.guarded(request, **match)

    async def fan_out(
        self, state: WebState, local: ReloadResult, path: str, params: dict[str, str]
    ) -> Response:
        workers = [_outcome(state.cluster.own_url, local)]
        answered, missing = await ask_peers(state, path, params)
        workers += [body for _, _, body in answered]
        ok = not missing and all(w.get("status") != REFUSED for w in workers)
        return self.ok({"ok": ok, "workers": workers, "missing": missing}, 200 if ok else 409)


@blueprint.route("/policy/reload", name="policy.reload")
class Reload(CommandView):
    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        by = _by(principal.name)
        result = await state.runtime.policies.reload(f"http:{by}")
        return await self.fan_out(state, result, "/_cluster/policy/reload", {"by": by})


@blueprint.route("/policy/promote", name="policy.promote")
class Promote(CommandView):
    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            raise BadRequest("body: must be JSON") from None
        sha256 = body.get("sha256") if isinstance(body, dict) else None
        if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
            raise BadRequest("sha256: the candidate's SHA-256, 64 lower-case hex digits")
        by = _by(principal.name)
        result = await state.runtime.policies.promote(sha256, f"http:{by}")
        return await self.fan_out(
            state, result, "/_cluster/policy/promote", {"by": by, "sha256": sha256}
        )


@blueprint.route("/policy", name="policy")
class Policy(ProtectedView):
    def permits(self, principal: Principal) -> bool:
        return principal.may_view_stats() or principal.may_change_policy()

    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        workers, missing = await every_worker_state(state)
        for w in workers:
            w.pop("shadow", None)
            if not principal.may_change_policy():
                # Error texts quote the policy (tenant ids of a binding, patterns): admin only.
                for key in ("last_error", "candidate_error"):
                    if w.get(key) is not None:
                        w[key] = ADMIN_ONLY
        active = {str(w["active"]["sha256"]) for w in workers}
        return self.ok({"consistent": len(active) == 1, "workers": workers, "missing": missing})


@blueprint.route("/shadow", name="shadow")
class Shadow(ProtectedView):
    role = "analyst"

    def permits(self, principal: Principal) -> bool:
        return principal.may_view_violations() or principal.may_change_policy()

    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        switch = state.runtime.policies
        workers, missing = await every_worker_state(state)
        active, candidate = switch.active, switch.candidate
        mine = candidate.sha256 if candidate is not None else None
        same = [
            w
            for w in workers
            if w["candidate"] is not None
            and w["candidate"]["sha256"] == mine
            and w["active"]["sha256"] == active.sha256
        ]
        return self.ok(
            {
                "active": {"version": active.version, "sha256": active.sha256},
                "candidate": None
                if candidate is None
                else {
                    "version": candidate.version,
                    "sha256": candidate.sha256,
                    "path": candidate.path,
                    "loaded_at": candidate.loaded_at,
                },
                "candidate_error": switch.candidate_error
                if switch.candidate_error is None or principal.may_change_policy()
                else ADMIN_ONLY,
                "workers": {
                    "shadowing": len(same),
                    "other": len(workers) - len(same),
                    "missing": len(missing),
                },
                "boundaries": merge_reports(r for w in same for r in w.get("shadow", [])),
            }
        )


@blueprint.route("/_cluster/policy", name="cluster.policy")
class ClusterPolicy(InternalView):
    async def answer(self, state: WebState, request: Request, **match: str) -> tuple[int, Any]:
        return 200, worker_state(state)


@blueprint.route("/_cluster/policy/reload", name="cluster.policy.reload")
class ClusterReload(InternalView):
    async def answer(self, state: WebState, request: Request, **match: str) -> tuple[int, Any]:
        by = _by(request.query.get("by", "?"))
        result = await state.runtime.policies.reload(f"peer:{by}")
        return (409 if result.status == REFUSED else 200), _outcome(state.cluster.own_url, result)


@blueprint.route("/_cluster/policy/promote", name="cluster.policy.promote")
class ClusterPromote(InternalView):
    async def answer(self, state: WebState, request: Request, **match: str) -> tuple[int, Any]:
        sha256 = request.query.get("sha256", "")
        if not SHA256.fullmatch(sha256):
            return 400, {"error": "bad request", "detail": "sha256: 64 lower-case hex digits"}
        by = _by(request.query.get("by", "?"))
        result = await state.runtime.policies.promote(sha256, f"peer:{by}")
        return (409 if result.status == REFUSED else 200), _outcome(state.cluster.own_url, result)


async def policy_metrics(state: WebState) -> str:
    """Every worker's policy gauges for ``/metrics`` (``zoneapp.observability.policy``)."""
    workers, _missing = await every_worker_state(state)
    return render(workers)


__all__ = ["ask_peers", "blueprint", "policy_metrics", "worker_state"]
