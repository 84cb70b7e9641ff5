"""The whole path on the real stack: restricted → confidential → public, through the worker.

Records are produced with aiokafka, the worker runs as ``faust -A zoneapp worker``, and
the lower-zone, quarantine and security topics are read back and checked.

This module holds the one test that proves the shipped example policy
(``deploy/policies/ecommerce.yaml``, what ``make run`` and the deploy files use) works
end to end. Unit tests sanitize with their own policy (``tests/fixtures/policy.yaml``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.records import CARD, EMAIL, NAME, PHONE, SSN
from tests.records import SENSITIVE as BASE_SENSITIVE
from tests.records import payment as base_payment
from zoneapp.dlp import build_scanner
from zoneapp.stack import EmbeddedStack
from zoneapp.vault import layout

from .conftest import RunWorker

pytestmark = pytest.mark.integration

AMEX = "378282246310005"
SENSITIVE = [*BASE_SENSITIVE, AMEX, "742 Evergreen Terrace"]
LOWER_TOPICS = ["confidential.payments", "confidential.user-profiles", "public.marketing-profiles"]


def payment(run: str, n: int, **overrides: Any) -> dict[str, Any]:
    """A realistic restricted payment; tenants alternate so records interleave tenants."""
    fields: dict[str, Any] = {
        "payment_id": f"pay_{run}_{n}",
        "tenant_id": "acme" if n % 2 else "globex",
    }
    return base_payment(**{**fields, **overrides})


def user(run: str) -> dict[str, Any]:
    return {
        "tenant_id": "acme",
        "user_id": f"u_{run}",
        "full_name": NAME,
        "email": EMAIL,
        "phone": PHONE,
        "ssn": SSN,
        "date_of_birth": "1987-03-14",
        "address": {
            "street": "742 Evergreen Terrace",
            "city": "Springfield",
            "zip": "94107",
            "country": "US",
        },
        "signup_date": "2024-05-17",
        "loyalty_tier": "gold",
        "interests": ["coffee", "cycling"],
        "diagnosis_codes": ["E11.9"],
    }


@dataclass
class Sent:
    topic: str
    partition: int
    offset: int
    expect: str  # "forward" or the expected violation reason
    detector: str | None = None

    @property
    def record_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass
class Seen:
    by_topic: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


async def produce(
    bootstrap: str,
    records: Sequence[
        tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]], str, str | None]
    ],
) -> list[Sent]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    sent: list[Sent] = []
    try:
        for topic, key, value, headers, expect, detector in records:
            meta = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
            sent.append(Sent(topic, meta.partition, meta.offset, expect, detector))
    finally:
        await producer.stop()
    return sent


async def read_all(
    bootstrap: str, topics: Sequence[str], until: Any, timeout: float = 90.0
) -> dict[str, list[Any]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: dict[str, list[Any]] = defaultdict(list)
    try:
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or [])
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                out[tp.topic].extend(records)
            if until(out):
                break
    finally:
        await consumer.stop()
    return out


def header(record: Any, name: str) -> bytes | None:
    for k, v in record.headers:
        if k == name:
            return bytes(v)
    return None


def test_records_cross_sanitized_and_violations_are_reported(
    stack: EmbeddedStack, run_worker: RunWorker
) -> None:
    """The shipped example policy, end to end: each of its three boundaries applies its
    transforms, headers and lineage; every kind of bad record is quarantined with a
    value-free violation; nothing sensitive reaches a lower zone or the vault in clear.

    Everything checked is what this test produced (its own record ids, and the profile
    it sent followed to the public zone), so it passes alone and in any order.
    """
    run = uuid.uuid4().hex[:8]
    worker = run_worker()
    deep: Any = "x"
    for _ in range(40):
        deep = {"d": deep}
    plan: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]], str, str | None]] = [
        (
            "restricted.payments",
            js(f"pay_{run}_1"),
            js(payment(run, 1)),
            [("content-type", b"application/json"), ("x-customer-email", EMAIL.encode())],
            "forward",
            None,
        ),
        (
            "restricted.payments",
            js(f"pay_{run}_2"),
            js(payment(run, 2, device_fingerprint="ab12", card_number=AMEX)),
            [],
            "forward",
            None,
        ),
        # The key itself is PII, as a plain (non-JSON) string: it is hashed, so it passes.
        ("restricted.payments", EMAIL.encode(), js(payment(run, 3)), [], "forward", None),
        (
            "restricted.payments",
            None,
            js(payment(run, 4, notes=f"my card is {CARD}, call me")),
            [],
            "dlp",
            "CREDIT_CARD",
        ),
        ("restricted.payments", None, js(payment(run, 5, notes=f"ssn {SSN}")), [], "dlp", "US_SSN"),
        (
            "restricted.payments",
            None,
            js(payment(run, 6, items=[{"sku": EMAIL, "quantity": 1, "price": 1}])),
            [],
            "dlp",
            "EMAIL",
        ),
        (
            "restricted.payments",
            None,
            js(payment(run, 7)),
            [("x-request-id", CARD.encode())],
            "dlp",
            "CREDIT_CARD",
        ),
        (
            "restricted.payments",
            None,
            js(payment(run, 8, notes="card 4111 1111 1111 1112 was declined")),
            [],
            "forward",
            None,
        ),
        (
            "restricted.payments",
            None,
            b'{"tenant_id": "acme", "card_number": "4111',
            [],
            "invalid_json",
            None,
        ),
        (
            "restricted.payments",
            None,
            b'{"tenant_id": "acme", "notes": "\xff\xfe"}',
            [],
            "invalid_utf8",
            None,
        ),
        (
            "restricted.payments",
            None,
            js(payment(run, 9, notes="y" * 300_000)),
            [],
            "too_large",
            None,
        ),
        ("restricted.payments", None, js(payment(run, 10, notes=deep)), [], "too_deep", None),
        (
            "restricted.payments",
            None,
            js(payment(run, 11, card_number={"pan": CARD})),
            [],
            "wrong_type",
            None,
        ),
        (
            "restricted.payments",
            None,
            js({k: v for k, v in payment(run, 12).items() if k != "tenant_id"}),
            [],
            "missing_tenant",
            None,
        ),
        ("restricted.user-pii", js(f"u_{run}"), js(user(run)), [], "forward", None),
    ]
    sent = asyncio.run(produce(stack.bootstrap, plan))
    expected_ids = {s.record_id for s in sent}
    topics = [*LOWER_TOPICS, "restricted.quarantine", "security.violations"]

    profile_id = sent[-1].record_id
    quarantined_ids = {s.record_id for s in sent if s.expect != "forward"}

    def public_ids(out: dict[str, list[Any]]) -> set[str]:
        """Where this run's profile landed in confidential.user-profiles: the id its
        second hop (to public) carries as its zoneapp-record-id."""
        return {
            f"{r.topic}/{r.partition}/{r.offset}"
            for r in out["confidential.user-profiles"]
            if header(r, "zoneapp-record-id") == profile_id.encode()
        }

    def done(out: dict[str, list[Any]]) -> bool:
        handled = {
            (header(r, "zoneapp-record-id") or b"").decode()
            for t in (
                "confidential.payments",
                "confidential.user-profiles",
                "restricted.quarantine",
            )
            for r in out[t]
        }
        reported = {
            "{topic}/{partition}/{offset}".format(**orjson.loads(r.value)["source"])
            for r in out["security.violations"]
        }
        second_hop = public_ids(out)
        published = {
            (header(r, "zoneapp-record-id") or b"").decode()
            for r in out["public.marketing-profiles"]
        }
        return (
            expected_ids <= handled
            and quarantined_ids <= reported
            and bool(second_hop)
            and second_hop <= published
        )

    out = asyncio.run(read_all(stack.bootstrap, topics, done))
    log = worker.log_text()
    assert "Traceback" not in log, log[-3000:]

    def mine(topic: str) -> list[Any]:
        return [
            r
            for r in out[topic]
            if (header(r, "zoneapp-record-id") or b"").decode() in expected_ids
        ]

    forwarded = mine("confidential.payments") + mine("confidential.user-profiles")
    quarantined = mine("restricted.quarantine")
    fwd_ids = {header(r, "zoneapp-record-id") for r in forwarded}
    q_ids = {header(r, "zoneapp-record-id") for r in quarantined}
    # Nothing lost, nothing both forwarded and quarantined.
    assert {i.decode() for i in fwd_ids | q_ids if i} == expected_ids
    assert not fwd_ids & q_ids
    for s in sent:
        rid = s.record_id.encode()
        assert (rid in fwd_ids) == (s.expect == "forward"), s

    # Nothing sensitive arrived in a lower zone, by string and by detector.
    scanner = build_scanner(["CREDIT_CARD", "US_SSN", "IBAN", "EMAIL", "PHONE"], [])
    for topic in LOWER_TOPICS:
        for r in out[topic]:
            blob = (r.value or b"") + (r.key or b"") + b"".join(bytes(v) for _, v in r.headers)
            for secret in SENSITIVE:
                assert secret.encode() not in blob, (topic, secret)
            doc = orjson.loads(r.value)
            texts = [(k, str(v)) for k, v in _leaves(doc)]
            assert scanner.scan(texts) == [], (topic, doc)

    # The forwarded payment has the transforms of the policy and its lineage.
    first = next(
        r for r in forwarded if header(r, "zoneapp-record-id") == sent[0].record_id.encode()
    )
    doc = orjson.loads(first.value)
    assert doc["card_number"].endswith("1111") and doc["card_number"] != CARD
    assert doc["ssn"] == "***-**-6789" and "cvv" not in doc
    assert doc["customer"]["email"].startswith("tok_") and doc["billing"]["iban"].startswith(
        "zenc2."
    )
    assert header(first, "zoneapp-source-topic") == b"restricted.payments"
    assert header(first, "zoneapp-boundary") == b"payments-to-confidential"
    assert header(first, "zoneapp-policy-version") == b"2026.11.1"
    assert header(first, "content-type") == b"application/json"
    assert (header(first, "x-customer-email") or b"").startswith(b"h1.")
    second = next(
        r for r in forwarded if header(r, "zoneapp-record-id") == sent[1].record_id.encode()
    )
    assert "device_fingerprint" not in orjson.loads(second.value)

    # Violations: one per quarantined record, right reason and detector, no values.
    events = [orjson.loads(r.value) for r in out["security.violations"]]
    by_source = {
        f"{e['source']['topic']}/{e['source']['partition']}/{e['source']['offset']}": e
        for e in events
    }
    for s in sent:
        if s.expect == "forward":
            assert s.record_id not in by_source
            continue
        event = by_source[s.record_id]
        assert event["reason"] == s.expect, (s, event)
        assert event["detector"] == s.detector
        assert event["boundary"] == "payments-to-confidential" and event["action"] == "quarantined"
        assert event["policy_version"] == "2026.11.1" and len(event["trace_id"]) == 32
        raw = json.dumps(event)
        for secret in SENSITIVE:
            assert secret not in raw
    # The quarantine holds the original bytes, in the restricted zone.
    original = next(
        r for r in quarantined if header(r, "zoneapp-record-id") == sent[8].record_id.encode()
    )
    assert original.value == plan[8][2]

    # Second hop: this run's profile reached the public zone as marketing-safe data.
    second_hop = public_ids(out)
    public = [
        orjson.loads(r.value)
        for r in out["public.marketing-profiles"]
        if (header(r, "zoneapp-record-id") or b"").decode() in second_hop
    ]
    assert public, "the profile never reached the public zone"
    for p in public:
        assert p["loyalty_tier"] == "gold" and p["age_range"] and p["tenant_id"] == "acme"
        assert set(p) <= {
            "tenant_id",
            "user_id",
            "age_range",
            "birth_year",
            "address",
            "loyalty_tier",
            "interests",
        }

    # The token vault holds this run's mappings, and every mapping is encrypted at rest.
    client = redis.Redis.from_url(stack.vault_url)
    for token in (doc["customer"]["email"], doc["card_number"]):
        assert client.exists(layout.token_key("acme", token)) == 1, token
    keys = client.keys("zoneapp:tok:*")
    dump = b"".join(bytes(client.get(k) or b"") for k in keys)  # type: ignore[arg-type]
    for secret in SENSITIVE:
        assert secret.encode() not in dump


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out.append((f"{path}.{k}", k))
            out.extend(_leaves(v, f"{path}.{k}"))
        return out
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [] if value is None or isinstance(value, bool) else [(path, value)]
