"""What every route shares: security headers, the bearer-key guard, signed internal calls.

A protected route names who may call (``allowed``) and the role a refusal names; its
``answer`` runs only for such a caller. 401 carries ``WWW-Authenticate``; 401, 403,
400 and 429 bodies are ``{"error", "detail"}`` with fixed texts (never the key, never a
value). Internal routes (``/_cluster/*``) answer signed worker calls only and sign their
replies (``zoneapp.web.cluster``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from faust.web import Request, Response, View

from zoneapp.web.auth import Forbidden, Principal, RateLimited, Unauthorized
from zoneapp.web.cluster import HEADER as CLUSTER_HEADER
from zoneapp.web.cluster import ClusterAuthError
from zoneapp.web.state import WebState, state_of

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
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="zoneapp"'}


class BadRequest(Exception):
    """A malformed parameter: HTTP 400 with this message (which names the parameter only)."""


def source_of(request: Request) -> str:
    """The peer address of the connection (behind a proxy: the proxy's)."""
    return str(getattr(request, "remote", None) or "unknown")


async def authenticate(state: WebState, request: Request) -> Principal:
    """Unauthorized, RateLimited (before any hashing) or the caller (zoneapp.web.auth)."""
    return await state.gate.authenticate(request.headers.get("Authorization"), source_of(request))


class ProtectedView(View):
    """A route that needs a bearer key: 401/403/400/429 as JSON, the answer otherwise."""

    #: What a 403 says is missing; ``permits`` decides.
    role: ClassVar[str] = "viewer"

    def permits(self, principal: Principal) -> bool:
        return principal.may_view_stats()

    async def answer(
        self, state: WebState, principal: Principal, request: Request, **match: str
    ) -> Response:
        raise NotImplementedError

    async def get(self, request: Request, **match: str) -> Response:
        return await self.guarded(request, **match)

    def ok(self, value: Any, status: int = 200) -> Response:
        return self.json(value, status=status, headers=SECURITY_HEADERS)

    def reply(self, status: int, body: dict[str, Any]) -> Response:
        return self.json(body, status=status, headers=SECURITY_HEADERS)

    def forbidden(self, detail: str) -> Response:
        return self.reply(403, {"error": "forbidden", "detail": detail})

    async def guarded(self, request: Request, **match: str) -> Response:
        state = state_of(request)
        try:
            principal = await authenticate(state, request)
        except Unauthorized as exc:
            return self.json(
                {"error": "unauthorized", "detail": str(exc)},
                status=401,
                headers={**SECURITY_HEADERS, **CHALLENGE},
            )
        except RateLimited as exc:
            return self.json(
                {"error": "rate limited", "detail": str(exc)},
                status=429,
                headers={**SECURITY_HEADERS, "Retry-After": str(round(exc.retry_after))},
            )
        if not self.permits(principal):
            return self.forbidden(f"needs the {self.role} role")
        try:
            return await self.answer(state, principal, request, **match)
        except BadRequest as exc:
            return self.reply(400, {"error": "bad request", "detail": str(exc)})
        except Forbidden as exc:
            return self.forbidden(str(exc))


class InternalView(View):
    """Worker-to-worker route: signed calls only, signed replies (zoneapp.web.cluster)."""

    async def answer(self, state: WebState, request: Request, **match: str) -> tuple[int, Any]:
        raise NotImplementedError

    async def get(self, request: Request, **match: str) -> Response:
        state = state_of(request)
        try:
            nonce = state.cluster.verify(request)
        except ClusterAuthError as exc:
            return self.json(
                {"error": "unauthorized", "detail": f"worker calls only ({exc})"},
                status=401,
                headers=SECURITY_HEADERS,
            )
        status, value = await self.answer(state, request, **match)
        body = orjson.dumps(value)
        assert state.cluster.signer is not None
        signature = state.cluster.signer.sign_response(nonce, status, body)
        return self.bytes(
            body,
            content_type="application/json",
            status=status,
            headers={**SECURITY_HEADERS, CLUSTER_HEADER: signature},
        )
