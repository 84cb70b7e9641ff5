"""Detokenize and decrypt over HTTP, for callers with an ``officer:<zone>`` role.

``GET|POST /detokenize`` (zone, tenant, token) and ``GET|POST /decrypt`` (zone, topic,
field, ciphertext): parameters as query string or JSON body. Every call, allowed or
refused — including unknown callers and rate-limited ones — is written to
``audit.access`` before anything is answered; if that write fails the answer is
503 and no value leaves. Responses carry the value only on 200.

Status codes: 401 missing/unknown key; 403 role of another zone or tenant, or a
ciphertext of another zone or tenant (``wrong_tenant``); 404 unknown token, or a zone
this worker holds no keys for; 410 the subject was erased; 422 tampered or malformed
input, or a ciphertext that is not a record field (``not_a_field``); 429 rate limited
(per caller, ``ZONEAPP_ACCESS_RATE``/``ZONEAPP_ACCESS_BURST``); 503 HSM, vault or
audit unavailable.

Unauthenticated calls cannot flood ``audit.access``: each source address has
``ZONEAPP_ANONYMOUS_RATE``/``ZONEAPP_ANONYMOUS_BURST`` audited refusals (and all sources
together ten times that); beyond it the answer is 429 and the call is only counted (a
warning every 30 s with the number). What is audited of an unauthenticated call is
fixed-size: who (``unknown``), action, the zone only if it is one of the policy's, the
outcome, the source address and a SHA-256 digest of the query, never a parameter's
text. Parameters longer than ``MAX_PARAM_CHARS`` are refused before anything else, and
authenticated callers' parameters go through ``zoneapp.access.audited``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping

import faust
import orjson
from faust import web
from faust.web import Request, Response, View

from zoneapp.access.fields import (
    AccessError,
    FieldAccess,
    KafkaAuditSink,
    audit_event,
    ciphertext_tenant,
)
from zoneapp.keys import KeyProviderError
from zoneapp.policy.compiled import AUDIT_TOPIC
from zoneapp.vault import VaultUnavailableError
from zoneapp.web.auth import Principal, RateLimited, Unauthorized
from zoneapp.web.base import CHALLENGE, authenticate, source_of
from zoneapp.web.state import WebState, state_of

log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
STATUS = {
    "unknown_token": 404,
    "wrong_zone": 403,
    "wrong_tenant": 403,
    "not_a_field": 422,
    "erased": 410,
    "tampered": 422,
    "malformed": 422,
    "unknown_key_version": 422,
}
#: Longest parameter accepted (a token, a field path, a ciphertext of a large field).
MAX_PARAM_CHARS = 65_536


def faust_audit_sink(app: faust.App) -> KafkaAuditSink:
    """The audit sink over the worker's own producer (declares the topic raw)."""
    app.topic(AUDIT_TOPIC, key_serializer="raw", value_serializer="raw")

    async def send(topic: str, key: bytes, value: bytes) -> None:
        fut = await app.producer.send(topic, key, value, None, None, None)
        await fut

    return KafkaAuditSink(send)


Call = Callable[[FieldAccess, Principal, Mapping[str, str]], Awaitable[bytes]]

blueprint = web.Blueprint("zoneapp")
blueprint.view_name_separator = "."


async def params_of(request: Request) -> dict[str, str]:
    """The query string, and on POST the string members of a JSON object body."""
    values: dict[str, str] = dict(request.query)
    if request.method == "POST":
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise AccessError("malformed", "the body must be a JSON object")
        values.update({k: v for k, v in body.items() if isinstance(v, str)})
    if any(len(v) > MAX_PARAM_CHARS for v in values.values()):
        raise AccessError("malformed", f"a parameter is longer than {MAX_PARAM_CHARS}")
    return values


async def reveal(
    view: View, request: Request, action: str, required: tuple[str, ...], call: Call
) -> Response:
    """Both routes: authenticate, authorize, limit, audit, answer (module docstring)."""
    state = state_of(request)
    runtime, limits = state.runtime, state.reveal
    who = "unknown"
    params: dict[str, str] = {}
    zone: str | None = None
    delegated = False  # once FieldAccess runs, it audits its own refusals
    try:
        try:
            principal = await authenticate(state, request)
        except (Unauthorized, RateLimited) as exc:
            return await refuse_anonymous(state, view, request, action, exc)
        who = principal.name
        params = await params_of(request)
        zone = params.get("zone")
        if not principal.officer_zones():
            # The role first: a key of no officer learns nothing from parameter errors.
            await audit(state, who, action, zone, "refused:forbidden", params)
            return view.json(
                {"error": "forbidden", "detail": "needs an officer:<zone> role"},
                status=403,
                headers=HEADERS,
            )
        missing = [p for p in required if not params.get(p)]
        if missing:
            raise AccessError("malformed", f"missing parameter(s): {', '.join(missing)}")
        assert zone is not None
        if not limits.per_caller.allow(who):
            await audit(state, who, action, zone, "refused:rate_limited", params)
            retry = max(1, round(limits.per_caller.retry_after(who)))
            return view.json(
                {"error": "rate limited"},
                status=429,
                headers={**HEADERS, "Retry-After": str(retry)},
            )
        if not principal.may_resolve(zone, params.get("tenant")):
            await audit(state, who, action, zone, "refused:forbidden", params)
            return view.json(
                {"error": "forbidden", "detail": f"needs officer:{zone}"},
                status=403,
                headers=HEADERS,
            )
        if zone not in runtime.zones_used:
            await audit(state, who, action, zone, "refused:zone_not_served", params)
            return view.json(
                {"error": f"this worker holds no keys for zone {zone!r}"},
                status=404,
                headers=HEADERS,
            )
        await runtime.open_keys()
        access = FieldAccess(zone, runtime.keyring, runtime.vault, limits.audit)
        delegated = True
        value = await call(access, principal, params)
    except AccessError as exc:
        # FieldAccess audits its own refusals; what is refused before it runs (parameter
        # errors) is audited here, so every authenticated call leaves an event.
        if not delegated:
            try:
                await audit(state, who, action, zone, f"refused:{exc.reason}", params)
            except Exception:
                return unavailable(view, "audit")
        return view.json(
            {"error": exc.reason, "detail": str(exc)},
            status=STATUS.get(exc.reason, 400),
            headers=HEADERS,
        )
    except (KeyProviderError, VaultUnavailableError) as exc:
        log.warning("%s refused: %s", action, type(exc).__name__)
        with contextlib.suppress(Exception):  # the attempt is audited when the audit can be
            await audit(state, who, action, zone, "failed:unavailable", params)
        return unavailable(view, "HSM or token vault")
    except Exception as exc:  # audit write failed, or a bug: never answer with a value
        log.error("%s failed: %s", action, type(exc).__name__)
        return unavailable(view, "audit")
    return view.json({"value": value.decode("utf-8", errors="replace")}, headers=HEADERS)


async def refuse_anonymous(
    state: WebState, view: View, request: Request, action: str, exc: Exception
) -> Response:
    """401 (or 429) for a caller without a valid key: audited within the anonymous
    budget, with nothing the caller chose but a digest (module docstring)."""
    limits = state.reveal
    source = source_of(request)
    if not (limits.anonymous.allow(source) and limits.anonymous_all.allow("*")):
        limits.count_suppressed()
        return view.json(
            {"error": "rate limited"}, status=429, headers={**HEADERS, "Retry-After": "1"}
        )
    zone = request.query.get("zone")
    query = str(getattr(request, "query_string", "") or "")
    outcome = "refused:rate_limited" if isinstance(exc, RateLimited) else "refused:unauthorized"
    try:
        await limits.audit.write(
            audit_event(
                who="unknown",
                action=action,
                zone=zone if zone in limits.zones else None,
                tenant=None,  # a caller's text, never audited for unauthenticated calls
                outcome=outcome,
                source=source[:64],
                request_sha256=hashlib.sha256(query.encode()).hexdigest()[:32],
            )
        )
    except Exception:
        return unavailable(view, "audit")
    if isinstance(exc, RateLimited):
        return view.json(
            {"error": "rate limited"},
            status=429,
            headers={**HEADERS, "Retry-After": str(round(exc.retry_after))},
        )
    return view.json(
        {"error": "unauthorized", "detail": str(exc)},
        status=401,
        headers={**HEADERS, **CHALLENGE},
    )


def unavailable(view: View, what: str) -> Response:
    return view.json({"error": f"{what} unavailable"}, status=503, headers=HEADERS)


async def audit(
    state: WebState,
    who: str,
    action: str,
    zone: str | None,
    outcome: str,
    params: Mapping[str, str],
) -> None:
    fields = {k: params[k] for k in ("token", "topic", "field") if k in params}
    tenant = params.get("tenant") or ciphertext_tenant(params.get("ciphertext"))
    await state.reveal.audit.write(
        audit_event(who=who, action=action, zone=zone, tenant=tenant, outcome=outcome, **fields)
    )


async def detokenize(access: FieldAccess, who: Principal, p: Mapping[str, str]) -> bytes:
    return await access.detokenize(who.name, p["tenant"], p["token"])


async def decrypt(access: FieldAccess, who: Principal, p: Mapping[str, str]) -> bytes:
    # A tenant-scoped officer gets only ciphertexts of its own tenant.
    return await access.decrypt(
        who.name,
        p["ciphertext"],
        p["topic"],
        p["field"],
        may_see=lambda tenant: who.may_resolve(access.zone, tenant),
        tenant=p.get("tenant") or None,
    )


@blueprint.route("/detokenize", name="detokenize")
class Detokenize(View):
    async def get(self, request: Request) -> Response:
        return await reveal(self, request, "detokenize", ("zone", "tenant", "token"), detokenize)

    async def post(self, request: Request) -> Response:
        return await self.get(request)


@blueprint.route("/decrypt", name="decrypt")
class Decrypt(View):
    async def get(self, request: Request) -> Response:
        return await reveal(
            self, request, "decrypt", ("zone", "topic", "field", "ciphertext"), decrypt
        )

    async def post(self, request: Request) -> Response:
        return await self.get(request)
