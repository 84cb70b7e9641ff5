"""W3C trace context in Kafka headers: parsed strictly, written fresh, never passed as data."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.records import CARD, EMAIL, payment, raw
from zoneapp.dlp import build_scanner
from zoneapp.keys.envelope import KeyRing
from zoneapp.observability.context import (
    ContextObserver,
    extract,
    format_traceparent,
    parse_traceparent,
    parse_tracestate,
    with_trace_headers,
)
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.vault import MemoryTokenVault

from .helpers import (
    EXAMPLE,
    PRODUCER_SPAN,
    PRODUCER_TRACE,
    TRACEPARENT,
    as_input,
    headers_of,
)

SCANNER = build_scanner(["CREDIT_CARD", "US_SSN", "IBAN", "EMAIL", "PHONE"], [])


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy(EXAMPLE)


@pytest.mark.parametrize(
    "value",
    [
        TRACEPARENT,
        TRACEPARENT.decode(),
        b" " + TRACEPARENT + b"\t",
        f"01-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01-future-field".encode(),
    ],
)
def test_valid_traceparent(value: bytes | str) -> None:
    assert parse_traceparent(value) == (int(PRODUCER_TRACE, 16), int(PRODUCER_SPAN, 16), 1)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"garbage",
        TRACEPARENT.upper(),
        TRACEPARENT + b"-extra",  # version 00 has exactly four fields
        b"ff" + TRACEPARENT[2:],
        f"00-{'0' * 32}-{PRODUCER_SPAN}-01".encode(),
        f"00-{PRODUCER_TRACE}-{'0' * 16}-01".encode(),
        f"00-{PRODUCER_TRACE[:-1]}-{PRODUCER_SPAN}-01".encode(),
        f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-1".encode(),
        f"00_{PRODUCER_TRACE}_{PRODUCER_SPAN}_01".encode(),
        "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
    ],
)
def test_invalid_traceparent(value: bytes | str) -> None:
    assert parse_traceparent(value) is None


def test_traceparent_is_always_written_as_version_00_with_only_the_sampled_flag() -> None:
    parsed = parse_traceparent(f"01-{PRODUCER_TRACE}-{PRODUCER_SPAN}-ff-x".encode())
    assert parsed is not None
    assert format_traceparent(*parsed) == f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01".encode()
    assert format_traceparent(1, 2, 0) == b"00-" + b"0" * 31 + b"1-" + b"0" * 15 + b"2-00"


def test_tracestate_members_are_validated() -> None:
    assert parse_tracestate([b"congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"]) == (
        ("congo", "t61rcWkgMzE"),
        ("rojo", "00f067aa0ba902b7"),
    )
    assert parse_tracestate([b"a=1", b"tenant@vendor=x"]) == (("a", "1"), ("tenant@vendor", "x"))
    assert parse_tracestate([b"a=1,,b=2"]) == (("a", "1"), ("b", "2"))
    for bad in (b"a", b"A=1", b"a=1,a=2", b"a=x=y,b=", b"a=\xff", b"a=1\x01", b" , "):
        assert parse_tracestate([bad]) == (), bad
    assert parse_tracestate([",".join(f"k{i}=v" for i in range(33)).encode()]) == ()
    assert parse_tracestate([b"k=" + b"v" * 600]) == ()


def test_tracestate_with_sensitive_data_is_dropped() -> None:
    # tracestate is the producer's free text: it must not smuggle PII into a lower zone.
    assert parse_tracestate([f"vendor={EMAIL}".encode()], SCANNER) == ()
    assert parse_tracestate([f"vendor=x,card={CARD.replace(' ', '')}".encode()], SCANNER) == ()
    assert parse_tracestate([b"vendor=abc"], SCANNER) == (("vendor", "abc"),)


def test_extract() -> None:
    incoming = extract([("TraceParent", TRACEPARENT), ("tracestate", b"vendor=abc")])
    assert incoming is not None
    assert f"{incoming.trace_id:032x}" == PRODUCER_TRACE and incoming.sampled
    assert incoming.tracestate == (("vendor", "abc"),)
    # Two traceparents are ambiguous; a tracestate alone means nothing.
    assert extract([("traceparent", TRACEPARENT), ("traceparent", TRACEPARENT)]) is None
    assert extract([("tracestate", b"vendor=abc")]) is None
    assert extract([("traceparent", b"")]) is None
    assert extract([]) is None


def test_with_trace_headers_replaces_any_trace_header() -> None:
    headers = [("content-type", b"x"), ("Traceparent", b"old"), ("tracestate", b"old=1")]
    assert with_trace_headers(headers, [("traceparent", b"new")]) == [
        ("content-type", b"x"),
        ("traceparent", b"new"),
    ]


def assert_continues(values: list[bytes], original: bytes) -> None:
    """One traceparent with the original's trace id and flags and a fresh span id."""
    [value] = values
    new, old = parse_traceparent(value), parse_traceparent(original)
    assert new is not None and old is not None
    assert (new[0], new[2]) == (old[0], old[2])
    assert new[1] != old[1]


def _guard(policy: CompiledPolicy, boundary: str, keyring: KeyRing, sink: MemorySink) -> Any:
    """A guard as the worker builds it with tracing off: the context observer only."""
    compiled = policy.boundary(boundary)
    return BoundaryGuard(
        policy,
        compiled,
        keyring,
        MemoryTokenVault(),
        sink,  # type: ignore[arg-type]
        observer=ContextObserver(policy, compiled),
    )


async def test_forwarded_record_continues_the_producers_trace(
    policy: CompiledPolicy, keyring: KeyRing
) -> None:
    """Tracing off (no endpoint): the producer's trace id is continued under a fresh
    span id; its tracestate does not cross (no vendor key is allow-listed)."""
    sink = MemorySink()
    guard = _guard(policy, "payments-to-confidential", keyring, sink)
    headers = [
        ("content-type", b"application/json"),
        ("traceparent", TRACEPARENT),
        ("tracestate", b"vendor=abc"),
    ]
    await guard.handle([raw(payment(), headers=headers, offset=0)])
    [forwarded] = sink.on("confidential.payments")
    assert_continues(headers_of(forwarded, "traceparent"), TRACEPARENT)
    assert headers_of(forwarded, "tracestate") == []
    assert headers_of(forwarded, "content-type") == [b"application/json"]


async def test_a_record_without_context_starts_one_trace_for_its_whole_path(
    policy: CompiledPolicy, keyring: KeyRing
) -> None:
    sink = MemorySink()
    guard = _guard(policy, "user-pii-to-confidential", keyring, sink)
    user = {"tenant_id": "acme", "user_id": "u1", "email": EMAIL, "date_of_birth": "1987-03-14"}
    await guard.handle([raw(user, topic="restricted.user-pii", headers=[], offset=0)])
    [hop1] = sink.on("confidential.user-profiles")
    [parent] = headers_of(hop1, "traceparent")
    parsed = parse_traceparent(parent)
    assert parsed is not None and parsed[2] == 0  # new trace, not sampled (nothing recorded)
    # The next boundary continues it.
    sink2 = MemorySink()
    guard2 = _guard(policy, "profiles-to-public", keyring, sink2)
    await guard2.handle([as_input(hop1, topic="confidential.user-profiles", offset=0)])
    [hop2] = sink2.on("public.marketing-profiles")
    assert_continues(headers_of(hop2, "traceparent"), parent)


async def test_quarantine_and_violation_carry_the_trace(
    policy: CompiledPolicy, keyring: KeyRing
) -> None:
    sink = MemorySink()
    guard = _guard(policy, "payments-to-confidential", keyring, sink)
    headers = [
        ("traceparent", TRACEPARENT),
        ("tracestate", f"vendor={EMAIL}".encode()),  # DLP hit: dropped
        ("zoneapp-boundary", b"forged"),
    ]
    await guard.handle(
        [
            raw(payment(notes=f"card {CARD}"), headers=headers, offset=0),
            raw(b"{broken", headers=[], offset=1),
        ]
    )
    quarantined = sink.on("restricted.quarantine")
    violations = sink.on("security.violations")
    assert len(quarantined) == 2 and len(violations) == 2
    event = orjson.loads(violations[0][2] or b"")
    assert event["trace_id"] == PRODUCER_TRACE
    # Exactly one traceparent, the fresh one; the unsafe tracestate is gone.
    assert_continues(headers_of(quarantined[0], "traceparent"), TRACEPARENT)
    assert headers_of(quarantined[0], "tracestate") == []
    assert headers_of(violations[0], "traceparent") == headers_of(quarantined[0], "traceparent")
    # Without a producer context: a new, valid W3C trace id, the same on every output.
    other = orjson.loads(violations[1][2] or b"")
    [q_parent] = headers_of(quarantined[1], "traceparent")
    [v_parent] = headers_of(violations[1], "traceparent")
    parsed = parse_traceparent(q_parent)
    assert parsed is not None and f"{parsed[0]:032x}" == other["trace_id"] != PRODUCER_TRACE
    assert q_parent == v_parent


async def test_a_policy_that_keeps_traceparent_does_not_duplicate_it(keyring: KeyRing) -> None:
    text = EXAMPLE.read_text().replace(
        "        content-type: {transform: keep, class: public}\n",
        "        content-type: {transform: keep, class: public}\n"
        "        traceparent: {transform: keep, class: public}\n",
    )
    from zoneapp.policy.loader import compile_policy_text

    policy = compile_policy_text(text.encode())
    sink = MemorySink()
    guard = _guard(policy, "payments-to-confidential", keyring, sink)
    await guard.handle([raw(payment(), headers=[("traceparent", TRACEPARENT)], offset=0)])
    [forwarded] = sink.on("confidential.payments")
    assert_continues(headers_of(forwarded, "traceparent"), TRACEPARENT)


def _with_trace(text: str, keyring: KeyRing) -> tuple[Any, MemorySink]:
    from zoneapp.policy.loader import compile_policy_text

    base = EXAMPLE.read_text()
    if text.startswith("HEADER"):
        line = "        content-type: {transform: keep, class: public}\n"
        base = base.replace(line, line + text.removeprefix("HEADER"), 1)
    else:
        line = "    subject_id: customer.email\n"
        base = base.replace(line, line + text, 1)
    policy = compile_policy_text(base.encode())
    sink = MemorySink()
    return _guard(policy, "payments-to-confidential", keyring, sink), sink


async def test_allow_listed_tracestate_keys_cross_each_scanned(keyring: KeyRing) -> None:
    guard, sink = _with_trace("    trace: {tracestate_keys: [vendor, other]}\n", keyring)
    state = f"vendor=abc,other={EMAIL.replace('@', '.at.')},drop=me,x=1".encode()
    await guard.handle(
        [raw(payment(), headers=[("traceparent", TRACEPARENT), ("tracestate", state)], offset=0)]
    )
    [forwarded] = sink.on("confidential.payments")
    assert headers_of(forwarded, "tracestate") == [
        b"vendor=abc,other=" + EMAIL.replace("@", ".at.").encode()
    ]
    guard, sink = _with_trace("    trace: {tracestate_keys: [vendor]}\n", keyring)
    await guard.handle(
        [
            raw(
                payment(),
                headers=[
                    ("traceparent", TRACEPARENT),
                    ("tracestate", b"vendor=4111-1111-1111-1111"),
                ],
                offset=0,
            )
        ]
    )
    [forwarded] = sink.on("confidential.payments")
    assert headers_of(forwarded, "tracestate") == []  # the DLP scan found a card in it


@pytest.mark.parametrize(
    "text",
    [
        "    trace: {continue: false}\n",
        "HEADER        traceparent: {transform: suppress}\n",
    ],
)
async def test_continuing_the_trace_is_a_policy_choice(text: str, keyring: KeyRing) -> None:
    guard, sink = _with_trace(text, keyring)
    await guard.handle([raw(payment(), headers=[("traceparent", TRACEPARENT)], offset=0)])
    [forwarded] = sink.on("confidential.payments")
    [value] = headers_of(forwarded, "traceparent")
    new, old = parse_traceparent(value), parse_traceparent(TRACEPARENT)
    assert new is not None and old is not None and new[0] != old[0] and new[1] != old[1]


def test_a_rule_keeping_tracestate_is_refused() -> None:
    from zoneapp.policy import PolicyError
    from zoneapp.policy.loader import compile_policy_text

    text = EXAMPLE.read_text().replace(
        "        content-type: {transform: keep, class: public}\n",
        "        content-type: {transform: keep, class: public}\n"
        "        tracestate: {transform: keep, class: public}\n",
    )
    with pytest.raises(PolicyError, match="tracestate_keys"):
        compile_policy_text(text.encode())
