"""Ingress checks on the embedded stack (issue 12, section 1): a real worker, broker,
Redis and SoftHSM, the shipped example policy with an ``ingress:`` block added.

payments-to-confidential validates against the shipped payment schema and quarantines
what is over 3 records per tenant (no refill within the test); user-pii-to-confidential
delays what is over 5/s (burst 2). A schema-invalid record and a rate-limited record
end in the quarantine with value-free violations, the delayed records are all
forwarded, and /zones, /metrics and reconcile count them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.records import payment
from tests.waiting import wait_for
from zoneapp.stack import EmbeddedStack

from .conftest import EXAMPLE_POLICY, REPO, require_prerequisites, spawn_worker

pytestmark = pytest.mark.integration

APP_ID = "zoneapp-ingress-test"
VIEWER = "zk_viewer-ingress-0123456789abcdefghij"
SCHEMAS = REPO / "deploy" / "policies" / "schemas"
#: Tenant ids that must never show up in a violation, /zones or /metrics.
ACME, FLOOD = "acme-tenant-7f3a", "flood-tenant-91c2"
FAUST = str(Path(sys.executable).with_name("faust"))
INGRESS = {
    "    destination: confidential.payments\n": (
        "    ingress:\n"
        "      schema: schemas/payment.schema.json\n"
        "      rate_limit: {rate: 0.001, burst: 3, over_limit: quarantine}\n"
    ),
    "    destination: confidential.user-profiles\n": (
        "    ingress:\n      rate_limit: {rate: 5, burst: 2, over_limit: delay}\n"
    ),
}


def ingress_policy(folder: Path) -> Path:
    text = EXAMPLE_POLICY.read_text()
    for anchor, block in INGRESS.items():
        assert text.count(anchor) == 1, anchor
        text = text.replace(anchor, anchor + block)
    folder.mkdir(parents=True)
    shutil.copytree(SCHEMAS, folder / "schemas")
    path = folder / "ecommerce-ingress.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def ingress_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    require_prerequisites()
    policy = ingress_policy(tmp_path / "policy")
    with EmbeddedStack(tmp_path / "stack", policy, partitions=2) as running:
        yield running


def user(n: int) -> dict[str, Any]:
    return {
        "tenant_id": ACME,
        "user_id": f"u_{n}",
        "full_name": "Jane Doe",
        "email": f"jane{n}@example.com",
        "date_of_birth": "1987-03-14",
        "address": {"city": "Springfield", "zip": "94107", "country": "US"},
        "signup_date": "2024-05-17",
        "loyalty_tier": "gold",
        "interests": ["coffee"],
    }


async def produce(stack: EmbeddedStack) -> None:
    """In order, on partition 0: acme's 2 valid payments and 1 invalid (3 tokens), the
    flood tenant's 4 valid payments (the 4th over the limit), and 6 user profiles."""
    payments = [
        payment(tenant_id=ACME, payment_id="pay_ok_1"),
        payment(tenant_id=ACME, payment_id="pay_ok_2"),
        payment(tenant_id=ACME, payment_id="pay_bad", amount="129.95 EUR"),
        *(payment(tenant_id=FLOOD, payment_id=f"pay_flood_{i}") for i in range(4)),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for p in payments:
            key = orjson.dumps(p["payment_id"])
            await producer.send_and_wait("restricted.payments", orjson.dumps(p), key, 0)
        for n in range(6):
            await producer.send_and_wait(
                "restricted.user-pii", orjson.dumps(user(n)), f'"u_{n}"'.encode(), 0
            )
    finally:
        await producer.stop()


async def read(stack: EmbeddedStack, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + 120
        while len(out) < count and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            out += [r for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    return out


def get(port: int, path: str, key: str | None = None) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=15) as resp:
        body: bytes = resp.read()
        return body


def test_schema_invalid_and_rate_limited_records_are_quarantined_end_to_end(
    ingress_stack: EmbeddedStack, tmp_path: Path
) -> None:
    stack = ingress_stack
    keys = tmp_path / "api-keys.json"
    digest = hashlib.sha256(VIEWER.encode()).hexdigest()
    keys.write_text(json.dumps({"keys": [{"name": "v", "sha256": digest, "roles": ["viewer"]}]}))
    worker = spawn_worker(
        stack,
        tmp_path,
        "ingress",
        {
            "ZONEAPP_APP_ID": APP_ID,
            "ZONEAPP_API_KEYS_FILE": str(keys),
            "ZONEAPP_STATS_FLUSH_MS": "500",
            "ZONEAPP_METRICS_PUBLIC": "true",
        },
    )
    asyncio.run(produce(stack))

    events = [orjson.loads(r.value) for r in asyncio.run(read(stack, "security.violations", 2))]
    assert sorted((e["reason"], e["source"]["offset"]) for e in events) == [
        ("rate_limited", 6),
        ("schema_invalid", 2),
    ]
    by_reason = {e["reason"]: e for e in events}
    invalid, limited = by_reason["schema_invalid"], by_reason["rate_limited"]
    assert invalid["boundary"] == limited["boundary"] == "payments-to-confidential"
    assert invalid["field_path"] == "amount" and invalid["detector"] is None
    assert invalid["findings"][0]["detail"] == (
        "type failed: schema /properties/amount/type, instance /amount"
    )
    assert limited["findings"][0]["detail"] == "over 0.001/s (burst 3)"
    text = json.dumps(events)
    assert "129.95" not in text and ACME not in text and FLOOD not in text

    quarantined = asyncio.run(read(stack, "restricted.quarantine", 2))
    assert sorted(dict(r.headers)["zoneapp-violation-reason"] for r in quarantined) == [
        b"rate_limited",
        b"schema_invalid",
    ]
    forwarded = asyncio.run(read(stack, "confidential.payments", 5))
    assert sorted(orjson.loads(r.value)["payment_id"] for r in forwarded) == sorted(
        ["pay_ok_1", "pay_ok_2", "pay_flood_0", "pay_flood_1", "pay_flood_2"]
    )
    # Delayed, not lost: all six profiles cross.
    assert len(asyncio.run(read(stack, "confidential.user-profiles", 6))) == 6

    def zones_counted() -> dict[str, Any] | None:
        view: dict[str, Any] = json.loads(get(worker.web_port, "/zones", VIEWER))
        found = {b["name"]: b for b in view["boundaries"]}
        pay, users = found["payments-to-confidential"], found["user-pii-to-confidential"]
        assert pay["reasons"] == {"rate_limited": 1, "schema_invalid": 1}, pay["reasons"]
        assert users["forwarded"] == 6 and users["rate_delayed"] >= 1, users
        return view

    view = wait_for(zones_counted, 60, "/zones to count the ingress checks")
    assert ACME not in json.dumps(view) and FLOOD not in json.dumps(view)
    exposition = get(worker.web_port, "/metrics").decode()
    assert ACME not in exposition and FLOOD not in exposition
    samples = {
        (s.name, s.labels.get("boundary"), s.labels.get("reason")): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }
    pay = "payments-to-confidential"
    assert samples[("zoneapp_violations_total", pay, "schema_invalid")] == 1
    assert samples[("zoneapp_violations_total", pay, "rate_limited")] == 1
    assert samples[("zoneapp_records_rate_delayed_total", "user-pii-to-confidential", None)] >= 1

    # reconcile: the quarantined records are handled, nothing is missing.
    env = {**os.environ, **stack.env(), "ZONEAPP_APP_ID": APP_ID}

    def reconciled() -> dict[str, Any] | None:
        done = subprocess.run(
            [FAUST, "-A", "zoneapp", "reconcile", "--json", "--boundary", pay],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        summary: dict[str, Any] = json.loads(done.stdout)
        assert done.returncode == 0 and summary["source_records"] == 7, summary
        return summary

    summary = wait_for(reconciled, 120, "reconcile to see every payment committed", interval=1)
    assert summary["ok"] and summary["missing"] == 0
    assert (summary["forwarded"], summary["quarantined"]) == (5, 2)
