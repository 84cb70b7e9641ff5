"""The web routes in process: the real routes on a plain ``faust.App``, a state of memory
back ends, and aiohttp's test client (no broker, no worker, nothing patched).

What stands behind the routes is real: the runtime builds its memory key provider and
memory vault from ``memory://`` URLs (``ZONEAPP_ENV=development``), the records are
sanitized by the real ``BoundaryGuard``, counted by the stats tables' own counters and
indexed by the violation table's own index (``zoneapp.tables.memory``). The broker the
health check probes is a listening TCP socket, which is all that check asks of it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from zoneapp.tables.memory import MemoryStats, MemoryViolations

from zoneapp.core.sanitizer import RawRecord
from zoneapp.keys import build_key_admin
from zoneapp.ops.ledger import Ledger
from zoneapp.ops.reconcile import LedgerRuns, Window
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.runtime import Runtime
from zoneapp.settings import Secret, Settings
from zoneapp.stack import free_port
from zoneapp.web.cluster import HEADER, Cluster, ClusterSigner
from zoneapp.web.routes import FAUST_VIEWS_OFF, register_web
from zoneapp.web.state import WebState

POLICY = Path(__file__).with_name("policy.yaml")
CLUSTER_SECRET = Secret("component-cluster-secret-" + "c" * 40)

#: name -> (bearer key, roles). Distinctive keys, so an echo in a body is easy to find.
KEYS: dict[str, tuple[str, list[str]]] = {
    "viewer": ("zk_viewer-component-0123456789abcdef", ["viewer"]),
    "analyst": ("zk_analyst-component-0123456789abcde", ["analyst"]),
    "officer": ("zk_officer-component-0123456789abcde", ["officer:restricted"]),
    "officer-acme": ("zk_officer-acme-component-012345678", ["officer:restricted:acme"]),
    "officer-globex": ("zk_officer-globex-component-0123456", ["officer:restricted:globex"]),
    "officer-confidential": ("zk_officer-conf-component-01234567", ["officer:confidential"]),
    "officer-public": ("zk_officer-public-component-0123456", ["officer:public"]),
    "admin": ("zk_admin-component-0123456789abcdef", ["admin"]),
}
#: A key no entry has: 401, like no key at all.
BOGUS = "zk_bogus-component-not-configured-0123"

#: The values the records carry: no response but a 200 of /detokenize or /decrypt may
#: hold one.
EMAILS = {"acme": "ada.lovelace@example.org", "globex": "grace.hopper@example.net"}
PHONES = {"acme": "+1 415 555 2671", "globex": "+44 20 7946 0958"}
CARD = "4111 1111 1111 1111"
VALUES = (*EMAILS.values(), *PHONES.values(), CARD, CARD.replace(" ", ""))


def key(name: str) -> str:
    return KEYS[name][0]


class MemoryAudit:
    """An audit sink that keeps the events (``zoneapp.access.fields.AuditSink``)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def write(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def settings(keys_file: Path | None, broker_port: int, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "app_id": f"component-{uuid.uuid4().hex[:8]}",
        "broker": f"kafka://127.0.0.1:{broker_port}",
        # A named store per settings: provisioned through the admin API, used by the runtime.
        "keys_url": f"memory://component-{uuid.uuid4().hex[:8]}",
        "vault_url": "memory://",
        "environment": "development",
        "policy_path": str(POLICY),
        "api_keys_file": str(keys_file) if keys_file else None,
        "cluster_secret": CLUSTER_SECRET,
    }
    return Settings(**{**base, **overrides})


@functools.cache
def compiled_policy() -> CompiledPolicy:
    """Compiled once per session: compiling the DLP patterns is most of a test's time."""
    return load_policy(POLICY)


#: The in-memory topics behind :func:`memory_reconcile`: offsets [0, SOURCE_RECORDS) of
#: each boundary's first source, partition 0, all committed; the last two quarantined,
#: offset 5 handled twice, offset 6 never.
SOURCE_RECORDS = 10


async def memory_reconcile(
    policy: CompiledPolicy,
    settings: Settings,
    window: Window | None = None,
    *,
    boundaries: Iterable[str] | None = None,
    timeout: float = 300.0,
) -> Ledger:
    """:func:`zoneapp.ops.reconcile.reconcile` over in-memory topics (same Ledger, same
    offset window), so the endpoint is tested without a broker."""
    window = window or Window()
    wanted = set(boundaries) if boundaries is not None else None
    ledger = Ledger()
    for boundary in policy.boundaries:
        if wanted is not None and boundary.name not in wanted:
            continue
        topic = boundary.sources[0]
        row = ledger.partition(boundary.name, topic, 0)
        row.start = max(0, window.first_offset or 0)
        row.committed = min(SOURCE_RECORDS, window.end_offset or SOURCE_RECORDS)
        row.source = set(range(row.start, row.committed))
        for offset in [*range(SOURCE_RECORDS), 5]:
            if offset == 6:
                continue
            lineage = {
                "zoneapp-boundary": boundary.name,
                "zoneapp-source-topic": topic,
                "zoneapp-source-partition": "0",
                "zoneapp-source-offset": str(offset),
            }
            ledger.output(lineage, quarantine=offset >= SOURCE_RECORDS - 2)
    return ledger


def build_state(
    config: Settings, own_url: str, audit: MemoryAudit
) -> tuple[WebState, MemoryStats, MemoryViolations]:
    runtime = Runtime(config, compiled_policy())
    stats = MemoryStats(runtime.boundaries)
    violations = MemoryViolations(config.violations_keep, runtime.policy)
    state = WebState.build(
        runtime,
        stats=stats,
        violations=violations,
        cluster=Cluster(config, lambda: own_url, list),
        audit=audit,
        ledgers=LedgerRuns(ttl=config.reconcile_cache, run=memory_reconcile),
    )
    return state, stats, violations


def web_application(state: WebState) -> web.Application:
    """The routes as a worker serves them: registered on a Faust app with the worker's
    web settings, Faust's own blueprints applied (``init_server``)."""
    app = faust.App(
        state.settings.app_id,
        broker=state.settings.broker,
        autodiscover=False,
        store="memory://",
        **FAUST_VIEWS_OFF,
    )
    register_web(app, state)
    server: Any = app.web
    server.init_server()
    application: web.Application = server.web_app
    return application


def registered_routes(application: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route the application serves, sorted."""
    found = set()
    for resource in application.router.resources():
        info = resource.get_info()
        path = str(info.get("formatter") or info.get("path") or resource.canonical)
        for route in resource:
            found.add((route.method, path))
    return sorted(found)


def order(tenant: str, n: int, notes: str = "leave at the door") -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "order_id": f"ord-{tenant}-{n}",
        "customer": {"email": EMAILS[tenant], "phone": PHONES[tenant]},
        "notes": notes,
    }


@dataclass
class Web:
    """One in-process web server and what stands behind it."""

    client: TestClient[web.Request, web.Application]
    state: WebState
    audit: MemoryAudit
    stats: MemoryStats
    violations: MemoryViolations
    url: str
    #: tenant -> the record as forwarded to confidential.orders (tokens, ciphertexts).
    forwarded: dict[str, dict[str, Any]] = field(default_factory=dict)
    violation_ids: list[str] = field(default_factory=list)

    def token(self, tenant: str) -> str:
        return str(self.forwarded[tenant]["customer"]["email"])

    def ciphertext(self, tenant: str) -> str:
        return str(self.forwarded[tenant]["customer"]["phone"])

    async def call(
        self,
        method: str,
        path: str,
        who: str | None = None,
        *,
        body: dict[str, str] | None = None,
        signed: bool = False,
        params: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request: ``who`` is a KEYS name, a raw key, or None; (status, headers, body)."""
        headers: dict[str, str] = {}
        if who is not None:
            headers["Authorization"] = f"Bearer {KEYS[who][0] if who in KEYS else who}"
        if signed:
            signer = ClusterSigner(CLUSTER_SECRET, self.state.settings.app_id)
            items = sorted((params or {}).items())
            headers[HEADER] = signer.sign_request(method, self.url, path, items).header
        data = None if body is None else json.dumps(body).encode()
        async with self.client.request(
            method, path, headers=headers, data=data, params=params, allow_redirects=False
        ) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def get_json(self, path: str, who: str | None = None) -> Any:
        status, _, body = await self.call("GET", path, who)
        assert status == 200, (path, who, status, body[:300])
        return orjson.loads(body)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys.json"
    entries = [
        {"name": name, "sha256": hashlib.sha256(k.encode()).hexdigest(), "roles": roles}
        for name, (k, roles) in KEYS.items()
    ]
    path.write_text(json.dumps({"keys": entries}))
    return path


@pytest.fixture
async def broker() -> AsyncIterator[int]:
    """A listening TCP socket where the settings say the broker is."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


ServeWeb = Callable[..., Any]


@pytest.fixture
async def serve(keys_file: Path, broker: int) -> AsyncIterator[ServeWeb]:
    """``await serve(**settings overrides)``: a served Web with two tenants' orders
    sanitized through it (a token and a ciphertext each) and one violation."""
    started: list[Web] = []

    async def start(**overrides: Any) -> Web:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        audit = MemoryAudit()
        state, stats, violations = build_state(settings(keys_file, broker, **overrides), url, audit)
        assert state.load_keys() is None
        runtime = state.runtime
        admin = build_key_admin(
            runtime.settings.keys_url, runtime.settings.pkcs11_pin, development=True
        )
        await admin.provision(sorted(runtime.zones_used))
        await admin.close()
        await runtime.open_keys()
        client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(web_application(state), host="127.0.0.1", port=port)
        )
        await client.start_server()
        served = Web(client, state, audit, stats, violations, url)
        started.append(served)
        await sanitize(served)
        return served

    yield start
    for served in started:
        await served.client.close()
        await served.state.close()
        await served.state.runtime.close()


async def sanitize(served: Web) -> None:
    """Run orders through the real guard into the memory tables: one per tenant is
    forwarded, one with a card number in its notes is quarantined."""
    runtime = served.state.runtime
    policy = runtime.require_policy()
    boundary = policy.boundary("orders-to-confidential")
    sink = MemorySink()
    guard = BoundaryGuard(policy, boundary, runtime.keyring, runtime.vault, sink)
    docs = [order("acme", 1), order("globex", 2), order("acme", 3, notes=f"card {CARD}")]
    records = [
        RawRecord("restricted.orders", 0, offset, None, orjson.dumps(doc), [], None)
        for offset, doc in enumerate(docs)
    ]
    outcomes = await guard.handle(records)
    served.stats.on_batch(boundary.name, records, outcomes, 0.003)
    served.stats.flush()
    for sent in sink.on(boundary.destination):
        doc = orjson.loads(sent[2] or b"")
        served.forwarded[doc["tenant_id"]] = doc
    for offset, sent in enumerate(sink.on(policy.security_topic)):
        served.violations.store(policy.security_topic, 0, offset, sent[2])
        served.violation_ids.append(orjson.loads(sent[2] or b"")["id"])
    assert set(served.forwarded) == {"acme", "globex"} and len(served.violation_ids) == 1


@pytest.fixture
async def served(serve: ServeWeb) -> Web:
    result: Web = await serve()
    return result


def no_secret_in(body: bytes, presented: str | None) -> None:
    """Neither the presented key nor any record value is in ``body``."""
    if presented is not None:
        assert KEYS.get(presented, (presented,))[0].encode() not in body
    for value in VALUES:
        assert value.encode() not in body, value
