"""The HTTP API as an attacker meets it, on two real workers with HTTPS (issue 8).

Two ``faust -A zoneapp worker`` processes share a stack, an app id, the stack's cluster
secret and a TLS certificate; every call here goes over HTTPS, verified against the
test CA. Checked: worker-to-worker calls are signed and carry no caller key (item 4),
unknown keys are limited per source before hashing (5), unauthenticated floods do not
reach the audit topic (6), HTTPS for callers and between workers (7), ``/metrics``
needs a viewer key (8).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from zoneapp.stack import EmbeddedStack, WorkerProcess
from zoneapp.stack.demo import produce_demo

from ..conftest import EXAMPLE_POLICY, WORKER_READY_TIMEOUT, require_prerequisites, spawn_worker
from ..test_pipeline import read_all
from .conftest import wait_for
from .tls import make_tls

pytestmark = pytest.mark.integration

KEYS = {
    "viewer": ("zk_sec-viewer-0123456789abcdefghijklmn", ["viewer"]),
    "analyst": ("zk_sec-analyst-0123456789abcdefghijklm", ["analyst"]),
    "officer": ("zk_sec-officer-0123456789abcdefghijklm", ["officer:restricted"]),
}
FEED = 200


class Secure:
    def __init__(
        self, stack: EmbeddedStack, workers: list[WorkerProcess], ca: Path, env: dict[str, str]
    ) -> None:
        self.stack = stack
        self.workers = workers
        self.env = env
        self.context = ssl.create_default_context(cafile=str(ca))

    @property
    def ports(self) -> list[int]:
        return [w.web_port for w in self.workers]

    def call(
        self,
        port: int,
        path: str,
        key: str | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=body)
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=20, context=self.context) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def json(self, port: int, path: str, key: str) -> Any:
        status, _, body = self.call(port, path, key)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    require_prerequisites()
    tmp = tmp_path_factory.mktemp("secure")
    ca, cert, key = make_tls(tmp / "tls", ["127.0.0.1", "localhost"])
    keys_file = tmp / "api-keys.json"
    keys_file.write_text(
        json.dumps(
            {
                "keys": [
                    {"name": n, "sha256": hashlib.sha256(k.encode()).hexdigest(), "roles": r}
                    for n, (k, r) in KEYS.items()
                ]
            }
        )
    )
    env = {
        "ZONEAPP_API_KEYS_FILE": str(keys_file),
        "ZONEAPP_STATS_FLUSH_MS": "500",
        "ZONEAPP_WEB_TLS_CERTFILE": str(cert),
        "ZONEAPP_WEB_TLS_KEYFILE": str(key),
        "ZONEAPP_WEB_TLS_CAFILE": str(ca),
        "ZONEAPP_APP_ID": "zoneapp-secure",
    }
    with EmbeddedStack(tmp / "stack", EXAMPLE_POLICY) as stack:
        workers = [spawn_worker(stack, tmp, f"secure-{i}", env, wait=False) for i in (1, 2)]
        for worker in workers:
            worker.wait_ready(WORKER_READY_TIMEOUT)
        sent = asyncio.run(produce_demo(stack.broker_url, rate=0, count=FEED, seed=21))
        assert sent == FEED
        secure = Secure(stack, workers, ca, env)
        viewer = KEYS["viewer"][0]

        def settled() -> bool:
            views = [secure.json(p, "/zones", viewer) for p in secure.ports]
            return all(
                v["workers"] == {"answered": 2, "missing": 0}
                and next(z for z in v["zones"] if z["name"] == "restricted")["consumed"] == FEED
                for v in views
            )

        wait_for(settled, 180, f"both workers to count {FEED} records over HTTPS")
        yield secure


def test_the_api_is_https_only(secure: Secure) -> None:
    port = secure.ports[0]
    status, headers, _ = secure.call(port, "/health/live")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5)


def test_workers_gather_from_each_other_over_https(secure: Secure) -> None:
    """Each worker owns half the partitions: full counts on both prove the peers' answers
    (signed, over TLS) were accepted; the settled fixture waited for exactly that."""
    viewer = KEYS["viewer"][0]
    for port in secure.ports:
        view = secure.json(port, "/zones", viewer)
        assert view["workers"] == {"answered": 2, "missing": 0}
    for worker in secure.workers:
        text = worker.log_path.read_text(errors="replace")
        assert "did not answer" not in text
        assert "web: https on" in text and "cluster secret set" in text


@pytest.mark.parametrize(
    "path", ["/_cluster/stats", "/_cluster/violations", "/_cluster/violations/any-id"]
)
@pytest.mark.parametrize("who", [None, "viewer", "analyst"])
def test_internal_endpoints_answer_signed_calls_only(
    secure: Secure, path: str, who: str | None
) -> None:
    key = KEYS[who][0] if who else None
    for port in secure.ports:
        status, _, body = secure.call(port, path, key)
        assert status == 401, (path, who, body[:200])
        assert b"rows" not in body and b"items" not in body
    # A made-up signature is no better than none.
    forged = "v1;t=1;n=" + "0" * 32 + ";s=" + "0" * 64
    status, _, _ = secure.call(secure.ports[0], path, key, headers={"Zoneapp-Cluster-Auth": forged})
    assert status == 401


def test_a_routed_violation_is_answered_without_the_callers_key_and_not_cached(
    secure: Secure,
) -> None:
    analyst = KEYS["analyst"][0]
    found: list[Any] = []

    def violations_arrived() -> bool:
        # The violations table fills from security.violations after the stats settle.
        found[:] = secure.json(secure.ports[0], "/violations?limit=50", analyst)["items"]
        return bool(found)

    wait_for(violations_arrived, 120, "the demo feed's violations to reach the table")
    events = list(found)
    for event in events[:10]:
        for port in secure.ports:  # one of the two answers through the owner
            status, headers, body = secure.call(port, f"/violations/{event['id']}", analyst)
            assert status == 200 and json.loads(body) == event
            assert headers["Cache-Control"] == "no-store"
    for port in secure.ports:
        status, headers, _ = secure.call(port, "/violations/no-such-id", analyst)
        assert status == 404 and headers["Cache-Control"] == "no-store"
    for worker in secure.workers:
        text = worker.log_path.read_text(errors="replace")
        assert analyst not in text


def test_metrics_need_a_viewer_key(secure: Secure) -> None:
    port = secure.ports[1]
    status, headers, body = secure.call(port, "/metrics")
    assert status == 401 and b"zoneapp_" not in body
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert secure.call(port, "/metrics", KEYS["officer"][0])[0] == 403
    status, _, body = secure.call(port, "/metrics", KEYS["viewer"][0])
    assert status == 200 and b"zoneapp_records_consumed_total" in body


def test_fresh_bogus_keys_are_limited_per_source_before_hashing(secure: Secure) -> None:
    port = secure.ports[1]
    codes = [
        secure.call(port, "/zones", f"zk_bogus-{i:04d}-0123456789abcdef")[0] for i in range(30)
    ]
    assert codes[:5] == [401] * 5  # within the burst (ZONEAPP_AUTH_BURST 10): hashed, refused
    assert 429 in codes  # beyond it: refused before hashing
    # The same bogus key again is refused from the negative cache, not the budget: 401.
    assert secure.call(port, "/zones", "zk_bogus-0000-0123456789abcdef")[0] == 401
    # A key that verified before still works from the same source.
    assert secure.call(port, "/zones", KEYS["viewer"][0])[0] == 200


def test_unauthenticated_floods_are_bounded_in_the_audit(secure: Secure) -> None:
    port = secure.ports[0]
    marker = "tok_" + "Q" * 100_000
    body = json.dumps({"zone": "restricted", "tenant": "acme", "token": marker}).encode()
    started = time.monotonic()
    codes = [
        secure.call(port, "/detokenize?zone=restricted&note=" + "A" * 2000, None, body)[0]
        for _ in range(50)
    ]
    elapsed = time.monotonic() - started
    # ZONEAPP_ANONYMOUS_BURST 5, then ZONEAPP_ANONYMOUS_RATE 1 per second.
    assert set(codes) == {401, 429} and codes.count(401) <= 5 + elapsed + 1, (codes, elapsed)

    def enough(out: dict[str, list[Any]]) -> bool:
        return len(out["audit.access"]) >= codes.count(401)

    audit = asyncio.run(read_all(secure.stack.bootstrap, ["audit.access"], enough, timeout=20))
    records = audit["audit.access"]
    anonymous = [r for r in records if orjson.loads(r.value)["who"] == "unknown"]
    assert len(anonymous) == codes.count(401)
    for record in anonymous:
        assert len(record.value) < 1024
        event = orjson.loads(record.value)
        assert event["zone"] == "restricted" and event["outcome"] == "refused:unauthorized"
        assert set(event) <= {
            "id", "timestamp", "who", "action", "zone", "tenant", "outcome", "source",
            "request_sha256",
        }  # fmt: skip
        assert event["tenant"] is None  # every event names a tenant; a caller's text never
    blob = b"".join(r.value for r in records)
    assert b"QQQQ" not in blob and b"AAAA" not in blob
    # An authenticated officer's parameters are bounded too: a huge token is refused.
    status, _, _ = secure.call(port, "/detokenize", KEYS["officer"][0], body)
    assert status == 422


def test_a_rogue_group_member_gets_no_key_and_injects_nothing(
    secure: Secure, tmp_path: Path
) -> None:
    """A third worker joins the group with everything but the cluster secret (last test:
    it rebalances the group)."""
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("w" * 64)
    env = {**secure.env, "ZONEAPP_CLUSTER_SECRET_FILE": str(wrong)}
    rogue = spawn_worker(secure.stack, tmp_path, "rogue", env)
    secure.workers.append(rogue)
    analyst = KEYS["analyst"][0]

    def rebalanced() -> Any:
        views = [secure.json(p, "/zones", analyst) for p in secure.ports[:2]]
        return views if all(v["workers"] == {"answered": 2, "missing": 1} for v in views) else None

    views = wait_for(rebalanced, 150, "the honest workers to see the rogue and refuse it")
    for view in views:  # its partitions' counts are missing, nothing is added
        restricted = next(z for z in view["zones"] if z["name"] == "restricted")
        assert restricted["consumed"] <= FEED
    # The analyst's gathered call reached the rogue signed, without the analyst's key.
    assert secure.json(secure.ports[0], "/violations?limit=5", analyst)["incomplete"] is True
    rogue_view = secure.json(rogue.web_port, "/zones", analyst)
    assert rogue_view["workers"]["missing"] == 2  # the honest workers refused its calls
    for worker in secure.workers[:2]:
        text = worker.log_path.read_text(errors="replace")
        assert f"https://127.0.0.1:{rogue.web_port} did not answer" in text
    assert analyst not in rogue.log_path.read_text(errors="replace")
