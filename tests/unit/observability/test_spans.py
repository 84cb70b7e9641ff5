"""Spans: one per record per boundary, one trace across zones, and nothing sensitive in them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from tests.records import CARD, EMAIL, NAME, PHONE, SENSITIVE, SSN, payment, raw
from zoneapp.core.sanitizer import RawRecord
from zoneapp.dlp import build_scanner
from zoneapp.keys.envelope import KeyRing
from zoneapp.observability.context import parse_traceparent
from zoneapp.observability.spans import SpanObserver
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.vault import MemoryTokenVault

from .helpers import (
    EXAMPLE,
    PRODUCER_SPAN,
    PRODUCER_TRACE,
    TOKEN_MARKERS,
    TRACEPARENT,
    as_input,
    headers_of,
    leaves,
    memory_tracer,
    texts_of_span,
)

SCANNER = build_scanner(["CREDIT_CARD", "US_SSN", "IBAN", "EMAIL", "PHONE"], [])


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy(EXAMPLE)


def user(n: int = 1) -> dict[str, Any]:
    return {
        "tenant_id": "acme",
        "user_id": f"u_secret_{n}",
        "full_name": NAME,
        "email": EMAIL,
        "phone": PHONE,
        "ssn": SSN,
        "date_of_birth": "1987-03-14",
        "address": {"street": "742 Evergreen Terrace", "city": "Springfield", "zip": "94107"},
        "signup_date": "2024-05-17",
        "loyalty_tier": "gold",
        "interests": ["coffee", "cycling"],
    }


def guard_for(
    policy: CompiledPolicy, name: str, keyring: KeyRing, sink: MemorySink, tracer: Any
) -> BoundaryGuard:
    boundary = policy.boundary(name)
    return BoundaryGuard(
        policy,
        boundary,
        keyring,
        MemoryTokenVault(),
        sink,  # type: ignore[arg-type]
        observer=SpanObserver(policy, boundary, tracer.get_tracer("test")),
    )


def attrs_of(item: Any) -> dict[str, Any]:
    """A span's or an event's attributes, loosely typed for the assertions."""
    return dict(item.attributes or {})


def by_name(spans: Any, name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def assert_clean(spans: Any, planted: list[str]) -> None:
    """No span text holds a planted value, a token/hash/ciphertext or a DLP hit."""
    for span in spans:
        for text in texts_of_span(span):
            for secret in planted:
                if len(secret) >= 6:
                    assert secret not in text, (span.name, text)
                else:
                    assert secret != text, (span.name, text)
            for marker in TOKEN_MARKERS:
                assert marker not in text, (span.name, text)
            assert SCANNER.scan_text(text) == [], (span.name, text)


async def test_two_boundaries_make_one_trace(policy: CompiledPolicy, keyring: KeyRing) -> None:
    provider, exporter = memory_tracer()
    sink1, sink2 = MemorySink(), MemorySink()
    hop1 = guard_for(policy, "user-pii-to-confidential", keyring, sink1, provider)
    hop2 = guard_for(policy, "profiles-to-public", keyring, sink2, provider)
    first = raw(
        user(),
        key=b'"u_secret_1"',
        topic="restricted.user-pii",
        headers=[("traceparent", TRACEPARENT), ("tracestate", b"vendor=abc")],
        offset=5,
    )
    await hop1.handle([first])
    [confidential] = sink1.on("confidential.user-profiles")
    await hop2.handle([as_input(confidential, topic="confidential.user-profiles", offset=9)])
    [public] = sink2.on("public.marketing-profiles")
    spans = exporter.get_finished_spans()

    [s1] = by_name(spans, "boundary user-pii-to-confidential")
    [s2] = by_name(spans, "boundary profiles-to-public")
    # One trace: producer → hop 1 → hop 2; each output names its boundary's span.
    assert s1.context is not None and s2.context is not None
    assert f"{s1.context.trace_id:032x}" == f"{s2.context.trace_id:032x}" == PRODUCER_TRACE
    assert s1.parent is not None and f"{s1.parent.span_id:016x}" == PRODUCER_SPAN
    assert s1.parent.is_remote
    assert s2.parent is not None and s2.parent.span_id == s1.context.span_id
    assert s1.kind == s2.kind == SpanKind.CONSUMER
    for sent, span in ((confidential, s1), (public, s2)):
        [parent] = headers_of(sent, "traceparent")
        assert parse_traceparent(parent) == (span.context.trace_id, span.context.span_id, 1)  # type: ignore[union-attr]
        assert headers_of(sent, "tracestate") == []  # no vendor key is allow-listed

    # Attributes: where, what policy, what happened, and counts — no values.
    attrs = attrs_of(s1)
    assert attrs["zoneapp.boundary"] == "user-pii-to-confidential"
    assert attrs["zoneapp.zone"] == "restricted"
    assert attrs["zoneapp.destination.zone"] == "confidential"
    assert attrs["messaging.destination.name"] == "restricted.user-pii"
    assert attrs["messaging.destination.partition.id"] == "1"
    assert attrs["messaging.kafka.offset"] == 5
    assert attrs["zoneapp.policy.version"] == "2026.11.1"
    assert attrs["zoneapp.verdict"] == "forwarded"
    assert attrs["zoneapp.transform.tokenize"] == 3  # key, user_id, email
    assert attrs["zoneapp.transform.suppress"] >= 4
    # Events: the sanitize step (with its transforms) and the DLP scan, in order.
    events = {e.name: e for e in s1.events}
    assert set(events) == {"sanitize", "dlp"}
    assert "tokenize" in attrs_of(events["sanitize"])["zoneapp.transforms"]
    assert s1.start_time is not None and s1.end_time is not None
    sanitize_at, dlp_at = events["sanitize"].timestamp, events["dlp"].timestamp
    assert s1.start_time <= sanitize_at <= dlp_at <= s1.end_time

    # The shared steps: one batch span per boundary batch, linked from the record span.
    batches = by_name(spans, "batch user-pii-to-confidential")
    assert len(batches) == 1 and batches[0].context is not None
    assert [link.context.span_id for link in s1.links] == [batches[0].context.span_id]
    assert batches[0].context.trace_id != s1.context.trace_id
    steps = {
        s.name: s for s in spans if s.parent and s.parent.span_id == batches[0].context.span_id
    }
    assert set(steps) == {"keys.prepare", "vault.store"}
    assert attrs_of(steps["vault.store"])["zoneapp.vault.entries"] >= 1
    assert attrs_of(batches[0])["zoneapp.forwarded"] == 1

    planted = [*SENSITIVE, *leaves(user()), "u_secret_1"]
    planted += [v.decode() for v in (confidential[1] or b"", public[1] or b"")]
    planted += [v for doc in (confidential[2], public[2]) for v in leaves(orjson.loads(doc or b""))]
    planted = [p for p in planted if p not in ("acme", "gold", "coffee", "cycling")]
    assert_clean(spans, planted)


async def test_quarantine_span_and_violation_share_the_trace(
    policy: CompiledPolicy, keyring: KeyRing
) -> None:
    provider, exporter = memory_tracer()
    sink = MemorySink()
    guard = guard_for(policy, "payments-to-confidential", keyring, sink, provider)
    bad = payment(notes=f"call {PHONE}, card {CARD}, ssn {SSN}")
    await guard.handle(
        [
            raw(bad, headers=[("traceparent", TRACEPARENT)], offset=0),
            raw(payment(), headers=[], offset=1),
            raw(b"{broken", headers=[], offset=2),
        ]
    )
    spans = by_name(exporter.get_finished_spans(), "boundary payments-to-confidential")
    assert len(spans) == 3
    events = [orjson.loads(v or b"") for _, _, v, _ in sink.on("security.violations")]
    assert len(events) == 2
    for event in events:
        [span] = [
            s
            for s in spans
            if attrs_of(s).get("zoneapp.violation.id") == event["id"]  # type: ignore[union-attr]
        ]
        assert span.context is not None and event["trace_id"] == f"{span.context.trace_id:032x}"
    dlp = next(s for s in spans if attrs_of(s)["messaging.kafka.offset"] == 0)
    attrs = attrs_of(dlp)
    assert attrs["zoneapp.verdict"] == "quarantined" and attrs["zoneapp.reason"] == "dlp"
    assert attrs["zoneapp.dlp.CREDIT_CARD"] == 1 and attrs["zoneapp.dlp.US_SSN"] == 1
    assert attrs["zoneapp.dlp.PHONE"] == 1
    assert dlp.status.status_code == StatusCode.UNSET  # a quarantine is the guard working
    dlp_event = next(e for e in dlp.events if e.name == "dlp")
    assert attrs_of(dlp_event)["zoneapp.dlp.hits"] == 3
    broken = next(s for s in spans if attrs_of(s)["messaging.kafka.offset"] == 2)
    assert attrs_of(broken)["zoneapp.reason"] == "invalid_json"
    assert not [e for e in broken.events if e.name == "dlp"]  # never reached the scan
    assert_clean(exporter.get_finished_spans(), [*SENSITIVE, *leaves(bad), "{broken"])


async def test_unsampled_records_still_propagate(policy: CompiledPolicy, keyring: KeyRing) -> None:
    provider, exporter = memory_tracer(ALWAYS_OFF)
    sink = MemorySink()
    guard = guard_for(policy, "payments-to-confidential", keyring, sink, provider)
    await guard.handle([raw(payment(notes=CARD), headers=[("traceparent", TRACEPARENT)])])
    assert exporter.get_finished_spans() == ()
    [violation] = sink.on("security.violations")
    assert orjson.loads(violation[2] or b"")["trace_id"] == PRODUCER_TRACE
    [parent] = headers_of(violation, "traceparent")
    parsed = parse_traceparent(parent)
    assert parsed is not None and parsed[0] == int(PRODUCER_TRACE, 16) and parsed[2] == 0


async def test_a_failed_batch_ends_its_spans_with_an_error(
    policy: CompiledPolicy, keyring: KeyRing
) -> None:
    provider, exporter = memory_tracer()

    class BrokenSink(MemorySink):
        async def send(self, topic: str, *args: Any) -> None:
            raise ConnectionError("producer gone")

    guard = guard_for(policy, "payments-to-confidential", keyring, BrokenSink(), provider)
    with pytest.raises(ConnectionError):
        await guard.handle([raw(payment(), offset=0), raw(payment(), offset=1)])
    spans = exporter.get_finished_spans()
    [record] = by_name(spans, "boundary payments-to-confidential")
    [batch] = by_name(spans, "batch payments-to-confidential")
    assert record.status.status_code == StatusCode.ERROR
    assert batch.status.status_code == StatusCode.ERROR
    assert batch.status.description == "ConnectionError"


async def test_every_record_of_a_batch_gets_its_span(
    policy: CompiledPolicy, keyring: KeyRing
) -> None:
    provider, exporter = memory_tracer()
    sink = MemorySink()
    guard = guard_for(policy, "payments-to-confidential", keyring, sink, provider)
    records: list[RawRecord] = [
        raw(payment(payment_id=f"p{i}"), headers=[], offset=i) for i in range(20)
    ]
    await guard.handle(records)
    spans = by_name(exporter.get_finished_spans(), "boundary payments-to-confidential")
    assert sorted(attrs_of(s)["messaging.kafka.offset"] for s in spans) == list(range(20))
    assert len({s.context.trace_id for s in spans if s.context}) == 20  # one trace per record
