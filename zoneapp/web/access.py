"""Detokenize and decrypt over HTTP, for callers with an ``officer:<zone>`` role.

``GET|POST /detokenize`` (zone, tenant, token) and ``GET|POST /decrypt`` (zone, topic,
field, ciphertext): parameters as query string or JSON body. Every call, allowed or
refused — including unknown callers and rate-limited ones — is written to
``audit.access`` before anything is answered; if that write fails the answer is
503 and no value leaves. Responses carry the value only on 200.

Status codes: 401 missing/unknown key; 403 role of another zone or tenant, or a
ciphertext of another zone; 404 unknown token, or a zone this worker holds no keys
for; 410 the subject was erased; 422 tampered or malformed input; 429 rate limited
(per caller, ``ZONEAPP_ACCESS_RATE``/``ZONEAPP_ACCESS_BURST``); 503 HSM, vault or
audit unavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from zoneapp.access import AUDIT_TOPIC, AccessError, FieldAccess, audit_event
from zoneapp.keys import KeyProviderError
from zoneapp.runtime import Runtime
from zoneapp.vault import VaultUnavailableError
from zoneapp.web.auth import Principal, Unauthorized
from zoneapp.web.ratelimit import RateLimiter

log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
STATUS = {
    "unknown_token": 404,
    "wrong_zone": 403,
    "erased": 410,
    "tampered": 422,
    "malformed": 422,
    "unknown_key_version": 422,
}


class FaustAuditSink:
    """Audit records through the worker's producer, waiting for the broker's ack."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        app.topic(AUDIT_TOPIC, key_serializer="raw", value_serializer="raw")

    async def write(self, event: dict[str, Any]) -> None:
        fut = await self.app.producer.send(
            AUDIT_TOPIC, orjson.dumps(event["id"]), orjson.dumps(event), None, None, None
        )
        await fut


class AccessViews:
    """The shared logic of both endpoints: authenticate, authorize, limit, audit, answer."""

    def __init__(
        self,
        app: faust.App,
        runtime: Runtime,
        authenticate: Callable[[Request], Principal],
    ) -> None:
        self.runtime = runtime
        self.authenticate = authenticate
        self.audit = FaustAuditSink(app)
        self.limiter = RateLimiter(runtime.settings.access_rate, runtime.settings.access_burst)

    async def params(self, request: Request) -> dict[str, str]:
        values: dict[str, str] = dict(request.query)
        if request.method == "POST":
            try:
                body = orjson.loads(await request.read() or b"{}")
            except orjson.JSONDecodeError:
                body = None
            if not isinstance(body, dict):
                raise AccessError("malformed", "the body must be a JSON object")
            values.update({k: v for k, v in body.items() if isinstance(v, str)})
        return values

    async def handle(
        self,
        view: View,
        request: Request,
        action: str,
        required: tuple[str, ...],
        call: Callable[[FieldAccess, str, Mapping[str, str]], Awaitable[bytes]],
    ) -> Response:
        who = "unknown"
        params: dict[str, str] = {}
        zone: str | None = None
        try:
            params = await self.params(request)
            zone = params.get("zone")
            principal = self.authenticate(request)
            who = principal.name
            missing = [p for p in required if not params.get(p)]
            if missing:
                raise AccessError("malformed", f"missing parameter(s): {', '.join(missing)}")
            assert zone is not None
            if not self.limiter.allow(who):
                await self._audit(who, action, zone, "refused:rate_limited", params)
                retry = max(1, round(self.limiter.retry_after(who)))
                return view.json(
                    {"error": "rate limited"},
                    status=429,
                    headers={**HEADERS, "Retry-After": str(retry)},
                )
            if not principal.may_resolve(zone, params.get("tenant")):
                await self._audit(who, action, zone, "refused:forbidden", params)
                return view.json(
                    {"error": "forbidden", "detail": f"needs officer:{zone}"},
                    status=403,
                    headers=HEADERS,
                )
            if zone not in self.runtime.zones_used:
                await self._audit(who, action, zone, "refused:zone_not_served", params)
                return view.json(
                    {"error": f"this worker holds no keys for zone {zone!r}"},
                    status=404,
                    headers=HEADERS,
                )
            await self.runtime.open_keys()
            access = FieldAccess(zone, self.runtime.keyring, self.runtime.vault, self.audit)
            value = await call(access, who, params)
        except Unauthorized as exc:
            try:
                await self._audit(who, action, zone, "refused:unauthorized", params)
            except Exception:
                return self._unavailable(view, "audit")
            return view.json(
                {"error": "unauthorized", "detail": str(exc)},
                status=401,
                headers={**HEADERS, "WWW-Authenticate": 'Bearer realm="zoneapp"'},
            )
        except AccessError as exc:
            # FieldAccess audits its own refusals; parameter errors are audited here.
            if exc.reason == "malformed" and not params.get("ciphertext"):
                try:
                    await self._audit(who, action, zone, "refused:malformed", params)
                except Exception:
                    return self._unavailable(view, "audit")
            return view.json(
                {"error": exc.reason, "detail": str(exc)},
                status=STATUS.get(exc.reason, 400),
                headers=HEADERS,
            )
        except (KeyProviderError, VaultUnavailableError) as exc:
            log.warning("%s refused: %s", action, type(exc).__name__)
            return self._unavailable(view, "HSM or token vault")
        except Exception as exc:  # audit write failed, or a bug: never answer with a value
            log.error("%s failed: %s", action, type(exc).__name__)
            return self._unavailable(view, "audit")
        return view.json({"value": value.decode("utf-8", errors="replace")}, headers=HEADERS)

    def _unavailable(self, view: View, what: str) -> Response:
        return view.json({"error": f"{what} unavailable"}, status=503, headers=HEADERS)

    async def _audit(
        self, who: str, action: str, zone: str | None, outcome: str, params: Mapping[str, str]
    ) -> None:
        fields = {k: params[k] for k in ("tenant", "token", "topic", "field") if k in params}
        await self.audit.write(
            audit_event(who=who, action=action, zone=zone, outcome=outcome, **fields)
        )


def register_access_views(
    app: faust.App, runtime: Runtime, authenticate: Callable[[Request], Principal]
) -> AccessViews:
    views = AccessViews(app, runtime, authenticate)

    async def detokenize(access: FieldAccess, who: str, p: Mapping[str, str]) -> bytes:
        return await access.detokenize(who, p["tenant"], p["token"])

    async def decrypt(access: FieldAccess, who: str, p: Mapping[str, str]) -> bytes:
        return await access.decrypt(who, p["ciphertext"], p["topic"], p["field"])

    @app.page("/detokenize", name="zoneapp.detokenize")
    class Detokenize(View):
        async def get(self, request: Request) -> Response:
            return await views.handle(
                self, request, "detokenize", ("zone", "tenant", "token"), detokenize
            )

        async def post(self, request: Request) -> Response:
            return await self.get(request)

    @app.page("/decrypt", name="zoneapp.decrypt")
    class Decrypt(View):
        async def get(self, request: Request) -> Response:
            return await views.handle(
                self, request, "decrypt", ("zone", "topic", "field", "ciphertext"), decrypt
            )

        async def post(self, request: Request) -> Response:
            return await self.get(request)

    return views
