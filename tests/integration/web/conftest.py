"""Fixtures for the operators' views: a stack of their own, API keys, workers, HTTP calls."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zoneapp.stack import EmbeddedStack, WorkerProcess

from ..conftest import (
    EXAMPLE_POLICY,
    WORKER_STOP_TIMEOUT,
    require_prerequisites,
    spawn_worker,
)

KEYS = {
    "viewer": "zk_viewer-0123456789abcdefghijklmnop",
    "analyst": "zk_analyst-0123456789abcdefghijklmno",
    "officer-acme": "zk_officer-acme-0123456789abcdefghij",
    "officer-public": "zk_officer-public-0123456789abcdefgh",
}
ROLES = {
    "viewer": ["viewer"],
    "analyst": ["analyst"],
    "officer-acme": ["officer:restricted:acme-retail"],
    "officer-public": ["officer:public"],
}


@pytest.fixture(scope="module")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """A stack of this module's own, so counts are exactly what its tests produce."""
    require_prerequisites()
    with EmbeddedStack(tmp_path_factory.mktemp("web-stack"), EXAMPLE_POLICY) as running:
        yield running


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api-keys.json"
    entries = [
        {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(), "roles": ROLES[name]}
        for name, key in KEYS.items()
    ]
    path.write_text(json.dumps({"keys": entries}))
    return path


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture(scope="module")
def start_worker(
    web_stack: EmbeddedStack, keys_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartWorker]:
    """Start ``faust -A zoneapp worker`` processes on ``web_stack`` (stopped at module end)."""
    started: list[WorkerProcess] = []
    counter = itertools.count(1)
    logs = tmp_path_factory.mktemp("web-workers")

    def start(app_id: str = "zoneapp", wait: bool = True) -> WorkerProcess:
        env = {
            "ZONEAPP_API_KEYS_FILE": str(keys_file),
            "ZONEAPP_STATS_FLUSH_MS": "500",
            "ZONEAPP_RECONCILE_CACHE_S": "1",
            "ZONEAPP_APP_ID": app_id,
            # This module scrapes /metrics without a key: the documented opt-out.
            "ZONEAPP_METRICS_PUBLIC": "true",
        }
        worker = spawn_worker(web_stack, logs, f"web-worker-{next(counter)}", env, wait=wait)
        started.append(worker)
        return worker

    yield start
    for worker in reversed(started):
        worker.stop(timeout=WORKER_STOP_TIMEOUT)


def http(
    port: int, path: str, key: str | None = None, *, timeout: float = 15.0
) -> tuple[int, dict[str, str], bytes]:
    """GET http://127.0.0.1:port/path with an optional bearer key: (status, headers, body)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def get_json(port: int, path: str, key: str | None = None) -> Any:
    status, _, body = http(port, path, key)
    assert status == 200, f"GET {path} on :{port} -> {status}: {body[:300]!r}"
    return json.loads(body)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, OSError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")
