"""Traces across zones on the real stack, exported over OTLP/HTTP to a real receiver.

A user record enters the restricted zone with a producer's ``traceparent``; the worker
(``faust -A zoneapp worker``, both boundaries) forwards it restricted → confidential →
public. The receiver must get one trace for its whole path, in the documented shape,
with nothing sensitive in any span.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import orjson
import pytest

from tests.records import EMAIL, PHONE
from zoneapp.observability.context import parse_traceparent
from zoneapp.stack import EmbeddedStack

from ..conftest import RunWorker
from ..test_pipeline import SENSITIVE, header, js, payment, produce, read_all, user
from .otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.integration

SPAN_KIND_INTERNAL, SPAN_KIND_CONSUMER = 1, 5
TOKEN_MARKERS = ["tok_", "h1.", "zenc1.", "zenc2.", "zoneapp:kek", "zoneapp:hmac"]
HOP1, HOP2, PAY = (
    "boundary user-pii-to-confidential",
    "boundary profiles-to-public",
    "boundary payments-to-confidential",
)


def traceparent(trace_id: str, span_id: str) -> bytes:
    return f"00-{trace_id}-{span_id}-01".encode()


def trace_of(record: Any) -> tuple[str, str] | None:
    parsed = parse_traceparent(header(record, "traceparent") or b"")
    return None if parsed is None else (f"{parsed[0]:032x}", f"{parsed[1]:016x}")


def test_one_trace_across_zones_over_otlp(stack: EmbeddedStack, run_worker: RunWorker) -> None:
    run = uuid.uuid4().hex[:8]
    forward_trace, forward_parent = secrets.token_hex(16), secrets.token_hex(8)
    quarantine_trace, payment_trace = secrets.token_hex(16), secrets.token_hex(16)
    with OtlpReceiver() as receiver:
        run_worker(
            env_overrides={
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "OTEL_SERVICE_NAME": "zoneapp-it",
            }
        )
        leaky = user(run) | {"user_id": f"u_{run}_q", "interests": [f"call me on {PHONE}"]}
        sent = asyncio.run(
            produce(
                stack.bootstrap,
                [
                    (
                        "restricted.user-pii",
                        js(f"u_{run}"),
                        js(user(run)),
                        [
                            ("traceparent", traceparent(forward_trace, forward_parent)),
                            ("tracestate", b"vendor=abc"),
                        ],
                        "forward",
                        None,
                    ),
                    (
                        "restricted.user-pii",
                        js(f"u_{run}_q"),
                        js(leaky),
                        [("traceparent", traceparent(quarantine_trace, secrets.token_hex(8)))],
                        "dlp",
                        "PHONE",
                    ),
                    (
                        "restricted.payments",
                        js(f"pay_{run}"),
                        js(payment(run, 1)),
                        [
                            ("traceparent", traceparent(payment_trace, secrets.token_hex(8))),
                            ("x-customer-email", EMAIL.encode()),
                        ],
                        "forward",
                        None,
                    ),
                ],
            )
        )
        topics = [
            "confidential.user-profiles",
            "public.marketing-profiles",
            "confidential.payments",
            "security.violations",
            "restricted.quarantine",
        ]

        def traced(out: dict[str, list[Any]], topic: str, trace_id: str) -> list[Any]:
            return [r for r in out[topic] if (trace_of(r) or ("",))[0] == trace_id]

        def arrived(out: dict[str, list[Any]]) -> bool:
            return bool(
                traced(out, "public.marketing-profiles", forward_trace)
                and traced(out, "security.violations", quarantine_trace)
                and traced(out, "confidential.payments", payment_trace)
            )

        out = asyncio.run(read_all(stack.bootstrap, topics, arrived))
        assert arrived(out), "records did not reach their topics"

        def complete(spans: list[ReceivedSpan]) -> bool:
            names = {(s.trace_id, s.name) for s in spans}
            return {
                (forward_trace, HOP1),
                (forward_trace, HOP2),
                (quarantine_trace, HOP1),
                (payment_trace, PAY),
            } <= names

        spans = receiver.wait_for(complete)
        assert complete(spans), sorted({(s.trace_id, s.name) for s in spans})

    # -- the forwarded record: one trace, producer → hop 1 → hop 2 --------------------
    [hop1] = [s for s in spans if s.trace_id == forward_trace and s.name == HOP1]
    [hop2] = [s for s in spans if s.trace_id == forward_trace and s.name == HOP2]
    assert hop1.parent_span_id == forward_parent
    assert hop2.parent_span_id == hop1.span_id
    assert hop1.kind == hop2.kind == SPAN_KIND_CONSUMER
    [confidential] = traced(out, "confidential.user-profiles", forward_trace)
    [public] = traced(out, "public.marketing-profiles", forward_trace)
    assert trace_of(confidential) == (forward_trace, hop1.span_id)
    assert trace_of(public) == (forward_trace, hop2.span_id)
    assert header(public, "tracestate") is None  # no vendor key is allow-listed
    assert hop1.resource["service.name"] == "zoneapp-it"
    assert hop1.attributes["zoneapp.boundary"] == "user-pii-to-confidential"
    assert hop1.attributes["zoneapp.zone"] == "restricted"
    assert hop1.attributes["messaging.destination.name"] == "restricted.user-pii"
    assert hop1.attributes["messaging.kafka.offset"] == sent[0].offset
    assert hop1.attributes["messaging.destination.partition.id"] == str(sent[0].partition)
    assert hop1.attributes["zoneapp.policy.version"] == "2026.11.1"
    assert hop1.attributes["zoneapp.verdict"] == "forwarded"
    assert hop1.attributes["zoneapp.transform.tokenize"] == 3
    assert hop2.attributes["zoneapp.zone"] == "confidential"
    assert hop2.attributes["zoneapp.transform.hash"] == 2  # key and user_id
    assert [name for name, _ in hop1.events] == ["sanitize", "dlp"]
    # Shared steps: each record span links to its batch span, which has the steps.
    by_id = {s.span_id: s for s in spans}
    for span, boundary in ((hop1, "user-pii-to-confidential"), (hop2, "profiles-to-public")):
        [(link_trace, link_span, _)] = span.links
        batch = by_id[link_span]
        assert batch.trace_id == link_trace and batch.name == f"batch {boundary}"
        assert batch.kind == SPAN_KIND_INTERNAL and batch.parent_span_id == ""
        steps = {s.name for s in spans if s.parent_span_id == batch.span_id}
        assert "keys.prepare" in steps
    assert "vault.store" in {s.name for s in spans if s.parent_span_id == hop1.links[0][1]}

    # -- the quarantined record: the violation's trace id is the span's -----------------
    [q_span] = [s for s in spans if s.trace_id == quarantine_trace]
    assert q_span.attributes["zoneapp.verdict"] == "quarantined"
    assert q_span.attributes["zoneapp.reason"] == "dlp"
    assert q_span.attributes["zoneapp.dlp.PHONE"] == 1
    [violation] = traced(out, "security.violations", quarantine_trace)
    event = orjson.loads(violation.value)
    assert event["trace_id"] == q_span.trace_id == quarantine_trace
    assert q_span.attributes["zoneapp.violation.id"] == event["id"]
    [quarantined] = traced(out, "restricted.quarantine", quarantine_trace)
    assert trace_of(quarantined) == (quarantine_trace, q_span.span_id)
    assert [k for k, _ in quarantined.headers].count("traceparent") == 1

    # -- nothing sensitive in any span: names, attributes, events, links, resource -------
    planted = [*SENSITIVE, f"u_{run}", f"pay_{run}_1", f"call me on {PHONE}"]
    for record in (confidential, public, *traced(out, "confidential.payments", payment_trace)):
        planted += [v for v in _strings(orjson.loads(record.value)) if len(v) >= 6]
        planted.append(record.key.decode())
        planted += [bytes(v).decode() for k, v in record.headers if k == "x-customer-email"]
    for span in spans:
        for text in span.texts():
            for secret in planted:
                assert secret not in text, (span.name, text)
            for marker in TOKEN_MARKERS:
                assert marker not in text, (span.name, text)
    assert "restricted" in json.dumps(hop1.attributes)  # sanity: texts were really checked


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []
