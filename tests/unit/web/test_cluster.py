"""Worker-to-worker calls: signed requests and replies, no caller credentials, checked peers.

The peers here are real aiohttp servers on loopback: one honest worker that verifies
signatures with zoneapp's own code, and one rogue group member that records what it
receives and answers with fake rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, web

from zoneapp.settings import Secret, Settings
from zoneapp.stack import free_port
from zoneapp.web.cluster import (
    HEADER,
    MAX_SKEW,
    Cluster,
    ClusterAuthError,
    ClusterSigner,
    acceptable_peer,
)

SECRET = Secret("s" * 64)
OTHER = Secret("o" * 64)
URL = "http://worker-a:6066"


def signer(
    secret: Secret = SECRET, app: str = "zoneapp", now: float = 1_000_000.0
) -> ClusterSigner:
    return ClusterSigner(secret, app, clock=lambda: now)


def verify(s: ClusterSigner, header: str, **overrides: Any) -> str:
    args: dict[str, Any] = {
        "method": "GET",
        "own_url": URL,
        "path": "/_cluster/stats",
        "params": [("limit", "5")],
    }
    args.update(overrides)
    return s.verify_request(header, **args)


def test_a_signed_request_verifies_once() -> None:
    s = signer()
    signed = s.sign_request("GET", URL, "/_cluster/stats", [("limit", "5")])
    assert verify(s, signed.header) == signed.nonce
    with pytest.raises(ClusterAuthError, match="replayed"):
        verify(s, signed.header)


@pytest.mark.parametrize(
    ("other", "overrides", "why"),
    [
        (signer(), {"own_url": "http://worker-b:6066"}, "bad signature"),  # sent to another worker
        (signer(), {"own_url": "https://worker-a:6066"}, "bad signature"),
        (signer(), {"path": "/_cluster/violations"}, "bad signature"),
        (signer(), {"params": [("limit", "500")]}, "bad signature"),
        (signer(), {"method": "POST"}, "bad signature"),
        (signer(app="zoneapp-other"), {}, "bad signature"),  # another app's workers
        (signer(OTHER), {}, "bad signature"),  # no secret, or another one
        (signer(now=1_000_000.0 + MAX_SKEW + 1), {}, "expired"),
        (signer(now=1_000_000.0 - MAX_SKEW - 1), {}, "expired"),
    ],
)
def test_a_request_is_bound_to_worker_app_path_query_and_time(
    other: ClusterSigner, overrides: dict[str, Any], why: str
) -> None:
    signed = signer().sign_request("GET", URL, "/_cluster/stats", [("limit", "5")])
    with pytest.raises(ClusterAuthError, match=why):
        verify(other, signed.header, **overrides)


@pytest.mark.parametrize(
    "header", [None, "", "v1", "v2;t=1;n=2;s=3", "v1;t=x;n=" + "a" * 32 + ";s=" + "b" * 64]
)
def test_unsigned_or_malformed_requests_are_refused(header: str | None) -> None:
    with pytest.raises(ClusterAuthError):
        verify(signer(), header or "")


def test_replies_are_bound_to_the_request_and_the_secret() -> None:
    s = signer()
    body = orjson.dumps({"rows": []})
    header = s.sign_response("a" * 32, 200, body)
    assert s.verify_response(header, "a" * 32, 200, body)
    assert not s.verify_response(header, "b" * 32, 200, body)
    assert not s.verify_response(header, "a" * 32, 200, body + b" ")
    assert not s.verify_response(header, "a" * 32, 404, body)
    assert not s.verify_response(
        signer(OTHER).sign_response("a" * 32, 200, body), "a" * 32, 200, body
    )
    assert not s.verify_response(None, "a" * 32, 200, body)


@pytest.mark.parametrize(
    ("url", "scheme", "allowed", "ok"),
    [
        ("http://w1:6066", "http", (), True),
        ("https://w1:6066", "https", ("w1:6066",), True),
        ("http://w1:6066", "https", (), False),  # TLS workers never call plain HTTP
        ("https://w1:6066", "http", (), False),
        ("http://w1", "http", (), False),  # no port
        ("http://user:pw@w1:6066", "http", (), False),
        ("http://w1:6066/x", "http", (), False),
        ("http://w1:6066?x=1", "http", (), False),
        ("http://w1:6066#f", "http", (), False),
        ("http://evil:6066", "http", ("w1:6066",), False),  # not in ZONEAPP_CLUSTER_PEERS
        ("http://w1:99999", "http", (), False),
        ("gopher://w1:70", "http", (), False),
    ],
)
def test_advertised_urls_are_checked(
    url: str, scheme: str, allowed: tuple[str, ...], ok: bool
) -> None:
    assert acceptable_peer(url, scheme, allowed) is ok


# -- real servers ---------------------------------------------------------------------------


@dataclass
class Peer:
    url: str
    seen: list[dict[str, str]] = field(default_factory=list)


Serve = Callable[[Callable[[web.Request], Awaitable[web.Response]]], Awaitable[Peer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(handler: Callable[[web.Request], Awaitable[web.Response]]) -> Peer:
        port = free_port()
        peer = Peer(f"http://127.0.0.1:{port}")

        async def record(request: web.Request) -> web.Response:
            peer.seen.append(dict(request.headers))
            return await handler(request)

        app = web.Application()
        app.router.add_get("/{tail:.*}", record)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return peer

    yield start
    for runner in runners:
        await runner.cleanup()


def settings(secret: Secret | None = SECRET, peers: tuple[str, ...] = ()) -> Settings:
    return Settings(cluster_secret=secret, cluster_peers=peers)


def honest(cluster: Callable[[], Cluster]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """What zoneapp's internal views do: verify, answer, sign the reply."""

    async def handler(request: web.Request) -> web.Response:
        try:
            nonce = cluster().verify(request)
        except ClusterAuthError as exc:
            return web.json_response({"error": str(exc)}, status=401)
        body = orjson.dumps({"rows": [{"boundary": "b", "consumed": 7}]})
        signer = cluster().signer
        assert signer is not None
        return web.Response(
            body=body,
            content_type="application/json",
            headers={HEADER: signer.sign_response(nonce, 200, body)},
        )

    return handler


async def rogue_handler(request: web.Request) -> web.Response:
    return web.json_response({"rows": [{"boundary": "b", "consumed": 10**9}]})


async def test_gather_sends_no_caller_key_and_drops_unsigned_replies(serve: Serve) -> None:
    holder: list[Cluster] = []
    good = await serve(honest(lambda: holder[0]))
    holder.append(Cluster(settings(), lambda: good.url, list))
    rogue = await serve(rogue_handler)
    asking = Cluster(settings(), lambda: "http://127.0.0.1:1", lambda: [good.url, rogue.url])
    try:
        bodies, missing = await asking.gather("/_cluster/stats")
    finally:
        await asking.close()
    assert bodies == [{"rows": [{"boundary": "b", "consumed": 7}]}]  # no fake rows
    assert missing == [rogue.url]
    for headers in good.seen + rogue.seen:
        assert "Authorization" not in headers and "Cookie" not in headers
    # What the rogue captured is useless: a replay to the honest worker is refused.
    captured = rogue.seen[0][HEADER]
    async with ClientSession() as session:
        async with session.get(good.url + "/_cluster/stats", headers={HEADER: captured}) as resp:
            assert resp.status == 401
        async with session.get(good.url + "/_cluster/stats") as resp:
            assert resp.status == 401
        stolen = good.seen[0][HEADER]  # the honest worker's own request, replayed
        async with session.get(good.url + "/_cluster/stats", headers={HEADER: stolen}) as resp:
            assert resp.status == 401 and "replayed" in (await resp.json())["error"]


async def test_without_a_secret_no_peer_is_asked(serve: Serve) -> None:
    rogue = await serve(rogue_handler)
    asking = Cluster(settings(secret=None), lambda: "http://127.0.0.1:1", lambda: [rogue.url])
    bodies, missing = await asking.gather("/_cluster/stats")
    assert bodies == [] and len(missing) == 1 and rogue.seen == []


async def test_peers_outside_the_allow_list_are_not_called(serve: Serve) -> None:
    rogue = await serve(rogue_handler)
    asking = Cluster(
        settings(peers=("worker-b:6066",)), lambda: "http://127.0.0.1:1", lambda: [rogue.url]
    )
    bodies, missing = await asking.gather("/_cluster/stats")
    await asking.close()
    assert bodies == [] and len(missing) == 1 and rogue.seen == []


async def test_an_oversized_reply_is_dropped_unread(serve: Serve) -> None:
    from zoneapp.web.cluster import MAX_REPLY_BYTES

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"0," * (MAX_REPLY_BYTES // 2) + b"0]")

    rogue = await serve(huge)
    asking = Cluster(settings(), lambda: "http://127.0.0.1:1", lambda: [rogue.url])
    bodies, missing = await asking.gather("/_cluster/stats")
    await asking.close()
    assert bodies == [] and missing == [rogue.url]


async def test_a_large_honest_reply_is_read_whole(serve: Serve) -> None:
    holder: list[Cluster] = []
    rows = [{"boundary": f"b{i}", "consumed": i, "pad": "x" * 200} for i in range(20_000)]

    async def big(request: web.Request) -> web.Response:
        nonce = holder[0].verify(request)
        body = orjson.dumps({"rows": rows})
        signer = holder[0].signer
        assert signer is not None
        return web.Response(body=body, headers={HEADER: signer.sign_response(nonce, 200, body)})

    good = await serve(big)
    holder.append(Cluster(settings(), lambda: good.url, list))
    asking = Cluster(settings(), lambda: "http://127.0.0.1:1", lambda: [good.url])
    bodies, missing = await asking.gather("/_cluster/stats")
    await asking.close()
    assert missing == [] and bodies[0]["rows"] == rows
