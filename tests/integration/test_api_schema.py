"""The HTTP API under a generated client (issue 10, item 5).

Schemathesis reads ``/openapi.json`` from a running ``faust -A zoneapp worker`` and
sends requests it generates from the description (paths, query strings, JSON bodies,
with a key holding every role). Checked on every response: no 5xx, the status code is
one the description lists, the content type and the body match it. Then every operation
is called with no key and with a key of no role: only the endpoints the README lists as
public answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from zoneapp.stack import EmbeddedStack, WorkerProcess
from zoneapp.stack.demo import produce_demo

from .conftest import EXAMPLE_POLICY, require_prerequisites, spawn_worker

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("ZONEAPP_API_FUZZ_EXAMPLES", "25"))
ALL_ROLES = "zk_schema-all-roles-0123456789abcdefghij"
#: Keys with one narrow role each: every protected operation refuses at least one.
NARROW = {
    "viewer": ("zk_schema-viewer-0123456789abcdefghijk", ["viewer"]),
    "officer-public": ("zk_schema-officer-public-0123456789abc", ["officer:public"]),
}
#: The README's public endpoints (the page, its assets, health, this description).
PUBLIC = {"/", "/health", "/health/live", "/openapi.json", "/static/{name}"}


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    require_prerequisites()
    tmp = tmp_path_factory.mktemp("api-schema")
    keys = tmp / "api-keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "name": name,
                        "sha256": hashlib.sha256(key.encode()).hexdigest(),
                        "roles": roles,
                    }
                    for name, key, roles in (
                        ("all", ALL_ROLES, ["viewer", "analyst", "officer:restricted", "admin"]),
                        *((n, k, r) for n, (k, r) in NARROW.items()),
                    )
                ]
            }
        )
    )
    env = {
        "ZONEAPP_API_KEYS_FILE": str(keys),
        # Generated traffic is a flood by design: limits high enough to reach the handlers.
        "ZONEAPP_AUTH_RATE": "100000",
        "ZONEAPP_AUTH_BURST": "100000",
        "ZONEAPP_ANONYMOUS_RATE": "100000",
        "ZONEAPP_ANONYMOUS_BURST": "100000",
        "ZONEAPP_ACCESS_RATE": "100000",
        "ZONEAPP_ACCESS_BURST": "100000",
    }
    with EmbeddedStack(tmp / "stack", EXAMPLE_POLICY, partitions=2) as stack:
        running = spawn_worker(stack, tmp, "api-schema", env)
        asyncio.run(produce_demo(stack.broker_url, rate=0, count=60, seed=11))
        yield running


@pytest.fixture(scope="module")
def base_url(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.web_port}"


def test_generated_requests_get_described_answers_and_no_5xx(base_url: str) -> None:
    """Driven without schemathesis' pytest plugin (it does not load under pytest 9): one
    Hypothesis run per described operation, on the case strategy schemathesis builds."""
    described = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    ran = 0
    for result in described.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=base_url,
                headers={"Authorization": f"Bearer {ALL_ROLES}"},
                checks=[
                    checks.not_a_server_error,
                    checks.status_code_conformance,
                    checks.content_type_conformance,
                    checks.response_schema_conformance,
                ],
                timeout=30,
            )

        check()
        ran += 1
    assert ran >= 10


def _operations(base_url: str) -> list[tuple[str, str]]:
    described = requests.get(f"{base_url}/openapi.json", timeout=10).json()
    return [
        (method.upper(), path)
        for path, item in described["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete", "patch")
    ]


def test_every_operation_refuses_a_missing_or_wrong_role_key(base_url: str) -> None:
    operations = _operations(base_url)
    assert len(operations) >= 10
    protected = 0
    for method, path in operations:
        url = base_url + path.replace("{", "x").replace("}", "")
        anonymous = requests.request(method, url, timeout=10).status_code
        narrow = {
            name: requests.request(
                method, url, headers={"Authorization": f"Bearer {key}"}, timeout=10
            ).status_code
            for name, (key, _) in NARROW.items()
        }
        if path in PUBLIC:
            assert anonymous < 500 and anonymous not in (401, 403), (method, path, anonymous)
            continue
        protected += 1
        assert anonymous == 401, (method, path, anonymous)
        assert 403 in narrow.values(), (method, path, narrow)
        assert all(code < 500 for code in narrow.values()), (method, path, narrow)
    assert protected == len([op for op in operations if op[1] not in PUBLIC]) >= 8
