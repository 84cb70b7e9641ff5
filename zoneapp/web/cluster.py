"""Asking every worker: the rows of a table live with the worker that owns their partition.

Peers are the web URLs the workers advertise in the group protocol (Faust's partition
assignor, the metadata ``table_route`` uses). Anyone who can join the consumer group
can advertise any URL there, so that metadata is an address book, never a credential:

* **No caller credentials travel.** The asking worker authorizes the caller itself
  (viewer, analyst) and then asks its peers in its own name; a caller's bearer key never
  leaves the worker it was sent to.
* **Peers prove they hold the cluster secret** (``ZONEAPP_CLUSTER_SECRET[_FILE]``).
  Requests carry ``Zoneapp-Cluster-Auth: v1;t=<unix time>;n=<nonce>;s=<HMAC>``, an
  HMAC-SHA256 over a fixed domain prefix, the app id, method, the peer's own origin
  (``scheme://host:port``), path, sorted query, time and nonce. A peer accepts a
  request only within ``MAX_SKEW`` seconds of its clock, for its own origin and app id,
  and only once per nonce (a bounded cache that only valid signatures enter): a
  captured request cannot be replayed, nor sent to another worker or app.
* **Replies are signed too**, over the request's nonce, the status and the SHA-256 of
  the body, so a member without the secret cannot inject rows: an unsigned or wrongly
  signed reply counts as a worker that did not answer.
* **Advertised URLs are checked** before anything is sent: the scheme must be this
  worker's own (``https`` when the web server has TLS, with the peer's certificate
  verified), no user info, path, query or fragment, and, when ``ZONEAPP_CLUSTER_PEERS``
  lists ``host:port`` pairs, one of those.

Without a cluster secret a worker asks no peer (its views say how many did not answer)
and its internal endpoints refuse every call.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson

from zoneapp.settings import Secret, Settings

log = logging.getLogger(__name__)

PEER_TIMEOUT = 5.0
#: Largest reply read from a peer (a violations page of 500 events fits many times over);
#: a bigger one is dropped unread, so a rogue member cannot make a worker buffer gigabytes.
MAX_REPLY_BYTES = 16 * 1024 * 1024
HEADER = "Zoneapp-Cluster-Auth"
VERSION = "v1"
#: Seconds a signed request stays valid (clock skew between workers included).
MAX_SKEW = 30.0
#: Nonces remembered; only requests with a valid signature are added.
MAX_NONCES = 100_000
_REQUEST_DOMAIN = b"zoneapp/cluster/request/v1\n"
_RESPONSE_DOMAIN = b"zoneapp/cluster/response/v1\n"
_KEY_DOMAIN = b"zoneapp/cluster/key/v1"


class ClusterAuthError(Exception):
    """A worker-to-worker call without a valid signature (the reason, never the secret)."""


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    return urlencode(sorted((str(k), str(v)) for k, v in params))


def origin_of(url: str) -> str:
    """``scheme://host:port`` in lower case, with the scheme's default port filled in."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class SignedRequest:
    header: str
    nonce: str


class ClusterSigner:
    """Signs and verifies worker-to-worker requests and replies (see the module docstring)."""

    def __init__(
        self, secret: Secret, app_id: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = hmac.new(secret.reveal(), _KEY_DOMAIN, hashlib.sha256).digest()
        self._app = app_id.encode()
        self._clock = clock
        self._nonces: OrderedDict[str, float] = OrderedDict()

    def __repr__(self) -> str:
        return f"ClusterSigner(app={self._app.decode()!r})"

    def _request_mac(
        self, method: str, origin: str, path: str, query: str, stamp: str, nonce: str
    ) -> str:
        message = b"\n".join(
            part.encode() if isinstance(part, str) else part
            for part in (self._app, method.upper(), origin, path, query, stamp, nonce)
        )
        return hmac.new(self._key, _REQUEST_DOMAIN + message, hashlib.sha256).hexdigest()

    def sign_request(
        self, method: str, url: str, path: str, params: Iterable[tuple[str, str]]
    ) -> SignedRequest:
        stamp = str(int(self._clock()))
        nonce = secrets.token_hex(16)
        mac = self._request_mac(method, origin_of(url), path, canonical_query(params), stamp, nonce)
        return SignedRequest(f"{VERSION};t={stamp};n={nonce};s={mac}", nonce)

    def verify_request(
        self,
        header: str | None,
        *,
        method: str,
        own_url: str,
        path: str,
        params: Iterable[tuple[str, str]],
    ) -> str:
        """The request's nonce if it is signed for this worker, fresh and new; else raises."""
        if not header:
            raise ClusterAuthError("unsigned")
        fields = dict(part.partition("=")[::2] for part in header.split(";")[1:])
        if not header.startswith(VERSION + ";") or set(fields) != {"t", "n", "s"}:
            raise ClusterAuthError("malformed signature")
        stamp, nonce, mac = fields["t"], fields["n"], fields["s"]
        if not stamp.isdigit() or len(nonce) != 32 or len(mac) != 64:
            raise ClusterAuthError("malformed signature")
        expected = self._request_mac(
            method, origin_of(own_url), path, canonical_query(params), stamp, nonce
        )
        if not hmac.compare_digest(expected, mac):
            raise ClusterAuthError("bad signature")
        now = self._clock()
        if abs(now - int(stamp)) > MAX_SKEW:
            raise ClusterAuthError("expired signature")
        self._forget_expired(now)
        if nonce in self._nonces:
            raise ClusterAuthError("replayed signature")
        if len(self._nonces) >= MAX_NONCES:
            raise ClusterAuthError("too many signed requests")
        self._nonces[nonce] = now + 2 * MAX_SKEW
        return nonce

    def _forget_expired(self, now: float) -> None:
        while self._nonces:
            nonce, expires = next(iter(self._nonces.items()))
            if expires > now:
                break
            del self._nonces[nonce]

    def sign_response(self, nonce: str, status: int, body: bytes) -> str:
        message = b"\n".join(
            (self._app, nonce.encode(), str(status).encode(), hashlib.sha256(body).digest())
        )
        mac = hmac.new(self._key, _RESPONSE_DOMAIN + message, hashlib.sha256).hexdigest()
        return f"{VERSION};s={mac}"

    def verify_response(self, header: str | None, nonce: str, status: int, body: bytes) -> bool:
        return bool(header) and hmac.compare_digest(
            str(header), self.sign_response(nonce, status, body)
        )


def acceptable_peer(url: str, scheme: str, allowed: tuple[str, ...]) -> bool:
    """May this worker send a (signed) request to an advertised URL? See the docstring."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != scheme or not parts.hostname or port is None:
        return False
    if parts.username or parts.password or parts.path not in ("", "/"):
        return False
    if parts.query or parts.fragment:
        return False
    return not allowed or f"{parts.hostname.lower()}:{port}" in allowed


class Cluster:
    """This worker's view of its peers: who they are, and signed calls to them."""

    def __init__(
        self,
        settings: Settings,
        own_url: Callable[[], str],
        advertised: Callable[[], Iterable[str]],
    ) -> None:
        self.settings = settings
        self._own_url = own_url
        self._advertised = advertised
        self.signer = (
            ClusterSigner(settings.cluster_secret, settings.app_id)
            if settings.cluster_secret is not None
            else None
        )
        self._session: aiohttp.ClientSession | None = None
        self._warned: set[str] = set()

    @classmethod
    def of_app(cls, app: Any, settings: Settings) -> Cluster:
        def advertised() -> Iterable[str]:
            try:
                return [str(h) for h in app.assignor.tables_metadata()]
            except Exception:
                return []

        return cls(settings, lambda: str(app.conf.canonical_url), advertised)

    @staticmethod
    def same_worker(a: str, b: str) -> bool:
        return origin_of(a) == origin_of(b)

    @property
    def own_url(self) -> str:
        return self._own_url().rstrip("/")

    def _warn_once(self, what: str, message: str, *args: Any) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning(message, *args)

    def peer_urls(self) -> list[str]:
        """Web URLs of the other workers, as advertised, that pass :func:`acceptable_peer`."""
        me = origin_of(self.own_url)
        urls = {str(u).rstrip("/") for u in self._advertised()}
        others = sorted(u for u in urls if origin_of(u) != me)
        good = [
            u
            for u in others
            if acceptable_peer(u, self.settings.web_tls.scheme, self.settings.cluster_peers)
        ]
        if len(good) < len(others):
            # The URLs are group members' free text: counted, never logged.
            self._warn_once(
                "refused",
                "web: %d advertised worker URL(s) refused (scheme, form or ZONEAPP_CLUSTER_PEERS)",
                len(others) - len(good),
            )
        return good

    def advertised_count(self) -> int:
        me = origin_of(self.own_url)
        return len({origin_of(str(u)) for u in self._advertised()} - {me})

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            tls = self.settings.web_tls
            connector = aiohttp.TCPConnector(ssl=tls.client_context() if tls.enabled else False)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT)
            )
        return self._session

    async def get(
        self, url: str, path: str, params: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """A signed GET of ``path`` on one peer: (status, JSON body); raises on a bad reply."""
        if self.signer is None:
            raise ClusterAuthError("no cluster secret configured")
        items = sorted((str(k), str(v)) for k, v in (params or {}).items())
        signed = self.signer.sign_request("GET", url, path, items)
        async with self._client().get(
            url + path, params=items, headers={HEADER: signed.header}, allow_redirects=False
        ) as resp:
            if (resp.content_length or 0) > MAX_REPLY_BYTES:
                raise ClusterAuthError("reply too large")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise ClusterAuthError("reply too large")
                chunks.append(chunk)
            body = b"".join(chunks)
            if not self.signer.verify_response(
                resp.headers.get(HEADER), signed.nonce, resp.status, body
            ):
                raise ClusterAuthError("unsigned or wrongly signed reply")
            return resp.status, orjson.loads(body) if body else None

    async def gather(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> tuple[list[Any], list[str]]:
        """Signed GET of ``path`` on every peer: (JSON bodies, URLs that did not answer)."""
        if self.signer is None:
            count = self.advertised_count()
            if count:
                self._warn_once(
                    "secret",
                    "web: no ZONEAPP_CLUSTER_SECRET: not asking the %d other worker(s)",
                    count,
                )
            return [], ["?"] * count
        peers = self.peer_urls()
        refused = self.advertised_count() - len(peers)
        results = await asyncio.gather(
            *(self.get(url, path, params) for url in peers), return_exceptions=True
        )
        bodies: list[Any] = []
        missing: list[str] = ["?"] * max(0, refused)
        for url, result in zip(peers, results, strict=True):
            if isinstance(result, BaseException) or result[0] != 200:
                why = type(result).__name__ if isinstance(result, BaseException) else result[0]
                log.warning("web: worker %s did not answer %s: %s", url, path, why)
                missing.append(url)
            else:
                bodies.append(result[1])
        return bodies, missing

    def verify(self, request: Any) -> str:
        """The nonce of a valid signed request to this worker (an internal view), or raises."""
        if self.signer is None:
            raise ClusterAuthError("no cluster secret configured")
        return self.signer.verify_request(
            request.headers.get(HEADER),
            method=request.method,
            own_url=self.own_url,
            path=request.path,
            params=list(request.query.items()),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
