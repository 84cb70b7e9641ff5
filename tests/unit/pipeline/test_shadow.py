"""Shadow mode: what the candidate would do differently, in counts and places, and nothing
else: no value in the report, no vault write, no data key, no produced record."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from tests.records import SENSITIVE, payment, raw
from tests.unit.conftest import ZONES
from zoneapp.core.sanitizer import BoundarySanitizer, Outcome, Problem, Quarantine, RawRecord
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.keys.wrappers import CountingKeyProvider, KeyCalls
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.policies import BoundaryGuards, PolicySwitch
from zoneapp.pipeline.shadow import (
    ShadowBoundary,
    ShadowReport,
    field_places,
    merge_reports,
    policy_names,
)
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledBoundary, CompiledPolicy, compile_policy_text
from zoneapp.transforms import NO_KNOWN_TOKENS
from zoneapp.vault import CachingTokenVault, MemoryTokenVault

from .policy_files import BASE, edited, write

BOUNDARY = "payments-to-confidential"
#: Drops notes, forwards card_last4, tokenizes the zip code, blocks unnamed fields.
CANDIDATE = edited(
    ("      notes: {transform: keep, class: confidential}", "      notes: {transform: suppress}"),
    (
        "      card_last4: {transform: suppress}",
        "      card_last4: {transform: keep, class: confidential}",
    ),
    (
        "      customer.zip: {transform: generalize, class: confidential, to: prefix, length: 3}",
        "      customer.zip: {transform: tokenize, class: restricted, field_class: zip}",
    ),
    (
        "    subject_id: customer.email\n    unclassified: suppress",
        "    subject_id: customer.email\n    unclassified: block",
    ),
    ("        x-request-id: {transform: keep, class: internal}\n", ""),
    version="unit-fixture.candidate",
)
#: A field name that is itself a value: it may never appear in a report.
DATA_KEY = "ssn 219456789"
PHONE_NOTE = "call me on +1 415 555 2671"


def batch() -> list[RawRecord]:
    return [
        raw(payment(), offset=0, headers=[("X-Request-Id", b"r-1"), ("x-unlisted", b"v")]),
        raw(payment(payment_id="p1", **{DATA_KEY: "x"}), offset=1),
        raw(payment(payment_id="p2", notes=PHONE_NOTE), offset=2),
        raw(payment(payment_id="p3"), offset=3),
    ]


async def run(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault, *, candidate: bool
) -> tuple[PolicySwitch, MemorySink]:
    policy_file = write(tmp_path / "policy.yaml", BASE)
    candidate_file = write(tmp_path / "candidate.yaml", CANDIDATE) if candidate else None
    switch = PolicySwitch.load(
        str(policy_file), candidate_path=str(candidate_file) if candidate_file else None
    )
    sink = MemorySink()
    cached = CachingTokenVault(vault)

    def build(policy: CompiledPolicy, boundary: CompiledBoundary) -> BoundaryGuard:
        return BoundaryGuard(policy, boundary, keyring, cached, sink)

    guards = BoundaryGuards(switch, BOUNDARY, build)
    if candidate:
        result = await switch.load_candidate("start")
        assert result.candidate_error is None and switch.candidate is not None
    await guards.handle(batch())
    return switch, sink


async def test_the_report_names_what_the_candidate_would_change(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    switch, sink = await run(tmp_path, keyring, vault, candidate=True)
    report = switch.reports[BOUNDARY].as_json()
    assert report["records"] == 4
    # p1: the active policy drops the unnamed field, the candidate blocks the record; the
    # field's name is the producer's text, shown as "*".
    assert report["would_quarantine"] == {
        "records": 1,
        "because": [{"reason": "unclassified_field", "path": "*", "detector": None, "records": 1}],
    }
    # p2: a phone number in notes: quarantined now, forwarded by the candidate (it drops notes).
    assert report["would_forward"] == {
        "records": 1,
        "despite": [{"reason": "dlp", "path": "notes", "detector": "PHONE", "records": 1}],
    }
    assert report["detectors"] == [
        {"path": "notes", "detector": "PHONE", "active": 1, "candidate": 0}
    ]
    assert report["same_verdict"] == 2
    assert report["fields"] == {
        "would_drop": {"notes": 2, "$headers.x-request-id": 1},
        "would_keep": {"card_last4": 2},
    }
    assert (
        report["transforms"]["generalize"]["candidate"]
        < report["transforms"]["generalize"]["active"]
    )
    assert (
        report["transforms"]["tokenize"]["candidate"] > report["transforms"]["tokenize"]["active"]
    )
    assert report["vault_writes_skipped"] > 0
    text = orjson.dumps(report)
    for value in [*SENSITIVE, DATA_KEY, "219456789", "415 555 2671"]:
        assert value.encode() not in text, value
    # The candidate produced nothing: only the active policy's outputs were sent.
    hashes = {dict(s[3]).get("zoneapp-policy-hash") for s in sink.on("confidential.payments")}
    assert hashes == {hashlib.sha256(BASE.encode()).hexdigest().encode()}
    assert len(sink.on("confidential.payments")) == 3 and len(sink.on("security.violations")) == 1


async def test_shadow_costs_the_vault_and_the_hsm_nothing(
    tmp_path: Path, provider: MemoryKeyProvider
) -> None:
    """Same batch, with and without a candidate: the same vault contents, writes and round
    trips (the candidate's zip tokens and its subjects' keys are never stored), the same
    data keys wrapped; the only extra key-store calls derive the HMAC working keys of the
    purposes only the candidate uses (its zip tokens), once."""
    plain, shadowed = MemoryTokenVault(), MemoryTokenVault()
    plain_calls, shadow_calls = KeyCalls(), KeyCalls()
    plain_ring = KeyRing(CountingKeyProvider(provider, plain_calls), ZONES)
    shadow_ring = KeyRing(CountingKeyProvider(provider, shadow_calls), ZONES)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    await run(tmp_path / "a", plain_ring, plain, candidate=False)
    switch, _ = await run(tmp_path / "b", shadow_ring, shadowed, candidate=True)
    assert switch.reports[BOUNDARY].records == 4
    assert switch.reports[BOUNDARY].vault_writes_skipped > 0
    assert set(shadowed.data) == set(plain.data) and plain.data
    assert set(shadowed.subject_key_data) == set(plain.subject_key_data)
    assert shadowed.subjects == plain.subjects
    assert (shadowed.writes, shadowed.round_trips) == (plain.writes, plain.round_trips)
    assert shadow_ring.stats["deks_created"] == plain_ring.stats["deks_created"] == len(ZONES)
    policy = compile_policy_text(BASE.encode(), "a")
    candidate = compile_policy_text(CANDIDATE.encode(), "b")
    only_candidate = BoundarySanitizer(candidate, candidate.boundary(BOUNDARY)).hmac_purposes() - (
        BoundarySanitizer(policy, policy.boundary(BOUNDARY)).hmac_purposes()
    )
    assert only_candidate  # the zip tokens' purposes
    expected = plain_calls.by_operation.copy()
    expected["derive"] += len(only_candidate)
    assert shadow_calls.by_operation == expected


def test_field_places_hide_keys_the_policy_does_not_name() -> None:
    policy = compile_policy_text(BASE.encode(), "p.yaml")
    boundary = policy.boundary(BOUNDARY)
    names = policy_names(boundary)
    out = orjson.dumps(
        {
            "notes": "x",
            "jane.doe@example.com": 1,
            "customer": {"email": {"a rule on an object": 1}, "4111111111111111": {"deep": 1}},
            "items": [{"sku": "A"}, {"sku": "B", "ssn 219456789": 2}],
        }
    )
    places = field_places(out, [boundary.fields], names)
    assert places == {"notes", "*", "customer.email", "customer.*", "items[].sku", "items[].*"}


def test_reports_of_several_workers_add_up() -> None:
    one = {
        "boundary": "b",
        "records": 2,
        "same_verdict": 1,
        "would_forward": {"records": 0, "despite": []},
        "would_quarantine": {
            "records": 1,
            "because": [{"reason": "dlp", "path": "notes", "detector": "PHONE", "records": 1}],
        },
        "fields": {"would_drop": {"notes": 1}, "would_keep": {}},
        "detectors": [{"path": "notes", "detector": "PHONE", "active": 0, "candidate": 1}],
        "transforms": {"keep": {"active": 3, "candidate": 2}},
        "not_compared": 0,
        "errors": 0,
        "batches_skipped": 0,
        "vault_writes_skipped": 1,
    }
    [merged] = merge_reports([one, one])
    assert merged["records"] == 4 and merged["would_quarantine"]["records"] == 2
    assert merged["would_quarantine"]["because"][0]["records"] == 2
    assert merged["fields"]["would_drop"] == {"notes": 2}
    assert merged["detectors"] == [
        {"path": "notes", "detector": "PHONE", "active": 0, "candidate": 2}
    ]
    assert merged["transforms"] == {"keep": {"active": 6, "candidate": 4}}


@pytest.mark.parametrize("candidate", [False, True])
async def test_a_swap_resets_the_report(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault, candidate: bool
) -> None:
    switch, _ = await run(tmp_path, keyring, vault, candidate=candidate)
    assert bool(switch.reports) is candidate
    write(tmp_path / "policy.yaml", BASE.replace("unit-fixture.1", "unit-fixture.3"))
    await switch.reload("SIGHUP")
    assert switch.reports == {}
    assert (switch.candidate is not None) is candidate


async def test_what_only_the_vault_knows_is_not_compared(
    keyring: KeyRing, provider: MemoryKeyProvider
) -> None:
    """An active token_collision or internal_error cannot be reproduced without the vault;
    a candidate that cannot get its keys skips the batch; neither touches the outcomes."""
    policy = compile_policy_text(BASE.encode(), "a")
    candidate = compile_policy_text(CANDIDATE.encode(), "b")
    boundary = policy.boundary(BOUNDARY)
    await keyring.prepare()
    records = [raw(payment(), offset=0), raw(payment(), offset=1)]
    outcomes: list[Outcome] = [
        Quarantine([Problem("token_collision", "card_number")]),
        Quarantine([Problem("internal_error")]),
    ]
    shadow = ShadowBoundary(boundary, candidate, keyring)
    report = ShadowReport(BOUNDARY, policy.digest, candidate.digest, 0.0)
    provider.store.available = False  # the candidate's new HMAC purposes cannot be derived
    await shadow.observe(report, records, outcomes, NO_KNOWN_TOKENS)
    assert (report.batches_skipped, report.records) == (1, 0)
    provider.store.available = True
    await shadow.observe(report, records, outcomes, NO_KNOWN_TOKENS)
    assert (report.records, report.not_compared, report.same_verdict) == (2, 2, 0)
    assert [o.reason for o in outcomes if isinstance(o, Quarantine)] == [
        "token_collision",
        "internal_error",
    ]


async def test_a_candidate_equal_to_the_active_policy_is_not_shadowed(tmp_path: Path) -> None:
    policy_file = write(tmp_path / "policy.yaml", BASE)
    candidate_file = write(tmp_path / "candidate.yaml", BASE)
    switch = PolicySwitch.load(str(policy_file), candidate_path=str(candidate_file))
    result = await switch.load_candidate("start")
    assert switch.candidate is None and result.candidate_error is None
    assert switch.report(BOUNDARY) is None


async def test_a_candidate_schema_is_checked_in_shadow(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    """A candidate that adds an ingress schema reports the records it would quarantine as
    schema_invalid, with the schema's field path, never the value."""
    from tests.ingress import payment_schema, write_policy

    active = write(tmp_path / "policy.yaml", BASE)
    candidate = write_policy(
        tmp_path / "c",
        {"schema": "schemas/payment.schema.json"},
        {"schemas/payment.schema.json": payment_schema()},
    )
    switch = PolicySwitch.load(str(active), candidate_path=str(candidate))
    sink = MemorySink()
    cached = CachingTokenVault(vault)

    def build(policy: CompiledPolicy, boundary: CompiledBoundary) -> BoundaryGuard:
        return BoundaryGuard(policy, boundary, keyring, cached, sink)

    guards = BoundaryGuards(switch, BOUNDARY, build)
    assert (await switch.load_candidate("start")).candidate_error is None
    await guards.handle(
        [
            raw(payment(), offset=0),
            raw(payment(payment_id="not an id 219456789"), offset=1),
            raw(payment(**{DATA_KEY: "x"}), offset=2),
        ]
    )
    report = switch.reports[BOUNDARY].as_json()
    assert report["would_quarantine"]["records"] == 2
    causes = report["would_quarantine"]["because"]
    assert {c["reason"] for c in causes} == {"schema_invalid"}
    assert "payment_id" in {c["path"] for c in causes}
    text = orjson.dumps(report)
    assert b"219456789" not in text and DATA_KEY.encode() not in text
    assert len(sink.on("confidential.payments")) == 3  # the active policy forwarded all
