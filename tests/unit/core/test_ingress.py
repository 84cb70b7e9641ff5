"""The ingress gate on parsed records: rate limit first, then the schema; value-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ingress import BOUNDARY, ingress_policy
from tests.records import payment, raw
from zoneapp.core.ingress import IngressGate
from zoneapp.core.sanitizer import BoundarySanitizer, Parsed, Quarantine, RawRecord
from zoneapp.keys.envelope import KeyRing
from zoneapp.policy import CompiledPolicy

SCHEMA = "schemas/payment.schema.json"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def gate(policy: CompiledPolicy, clock: Clock) -> IngressGate:
    g = IngressGate.of(policy.boundary(BOUNDARY), clock)
    assert g is not None
    return g


async def parse(policy: CompiledPolicy, keyring: KeyRing, records: list[RawRecord]) -> list[Any]:
    sanitizer = BoundarySanitizer(policy, policy.boundary(BOUNDARY))
    for zone, purpose in sorted(sanitizer.hmac_purposes()):
        keyring.require_hmac(zone, purpose)
    await keyring.prepare()
    return [sanitizer.parse(r, keyring) for r in records]


def reasons(items: list[Parsed | Quarantine]) -> list[str | None]:
    return [i.reason if isinstance(i, Quarantine) else None for i in items]


async def test_schema_invalid_records_are_quarantined_with_places(
    tmp_path: Path, keyring: KeyRing
) -> None:
    policy = ingress_policy(tmp_path, {"schema": SCHEMA})
    records = [
        raw(payment(), offset=0),
        raw(payment(amount="129.95 EUR"), offset=1),
        raw(None, offset=2),  # a tombstone has no value to validate
    ]
    admitted = gate(policy, Clock()).admit(await parse(policy, keyring, records))
    assert reasons(admitted.items) == [None, "schema_invalid", None]
    bad = admitted.items[1]
    assert isinstance(bad, Quarantine)
    (problem,) = bad.problems
    assert (problem.path, problem.detail) == (
        "amount",
        "type failed: schema /properties/amount/type, instance /amount",
    )
    assert "129.95" not in repr(bad) and admitted.wait == 0


@pytest.mark.parametrize("over_limit", ["quarantine", "delay"])
async def test_over_the_limit_per_tenant(tmp_path: Path, keyring: KeyRing, over_limit: str) -> None:
    policy = ingress_policy(
        tmp_path, {"rate_limit": {"rate": 10, "burst": 2, "over_limit": over_limit}}
    )
    records = [raw(payment(tenant_id=t), offset=i) for i, t in enumerate("aaabbb")]
    records.append(raw(b"{broken", offset=6))  # failed parsing: not limited, already quarantined
    admitted = gate(policy, Clock()).admit(await parse(policy, keyring, records))
    if over_limit == "quarantine":
        assert reasons(admitted.items) == [
            None, None, "rate_limited", None, None, "rate_limited", "invalid_json",
        ]  # fmt: skip
        limited = admitted.items[2]
        assert isinstance(limited, Quarantine)
        assert limited.problems[0].detail == "over 10/s (burst 2)"
        assert admitted.wait == 0 and admitted.delayed == []
    else:
        assert reasons(admitted.items) == [None] * 6 + ["invalid_json"]
        assert admitted.delayed == [2, 5] and admitted.wait == pytest.approx(0.1)


async def test_per_tenant_and_key_buckets(tmp_path: Path, keyring: KeyRing) -> None:
    policy = ingress_policy(
        tmp_path,
        {
            "rate_limit": {
                "rate": 1,
                "burst": 1,
                "per": "tenant_and_key",
                "tenant_rate": 10,
                "tenant_burst": 10,
                "over_limit": "quarantine",
            }
        },
    )
    records = [
        raw(payment(), key=b'"k1"', offset=0),
        raw(payment(), key=b'"k2"', offset=1),
        raw(payment(), key=b'"k1"', offset=2),
        raw(payment(tenant_id="globex"), key=b'"k1"', offset=3),
    ]
    g = gate(policy, Clock())
    admitted = g.admit(await parse(policy, keyring, records))
    assert reasons(admitted.items) == [None, None, "rate_limited", None]
    limited = admitted.items[2]
    assert isinstance(limited, Quarantine)
    assert limited.problems[0].detail == "over 1/s (burst 1) per key"
    assert g.buckets is not None and g.buckets.keys is not None and len(g.buckets.keys) == 3
    assert len(g.buckets.tenants) == 2


@pytest.mark.parametrize("invent", ["key", "tenant"])
async def test_inventing_keys_or_tenants_does_not_multiply_the_burst(
    tmp_path: Path, keyring: KeyRing, invent: str
) -> None:
    """The review's case (README, Rate limits): 0.001/s, burst 1, quarantine; 300 records,
    a new key (or a new unbound tenant id) per record."""
    limit: dict[str, object] = {"rate": 0.001, "burst": 1, "over_limit": "quarantine"}
    if invent == "key":
        limit |= {"per": "tenant_and_key", "tenant_rate": 0.001, "tenant_burst": 1}
    policy = ingress_policy(tmp_path, {"rate_limit": limit})
    records = [
        raw(
            payment(tenant_id="acme" if invent == "key" else f"t{i}"),
            key=f'"k{i}"'.encode(),
            offset=i,
        )
        for i in range(300)
    ]
    admitted = gate(policy, Clock()).admit(await parse(policy, keyring, records))
    forwarded = reasons(admitted.items).count(None)
    # A new key: the tenant's burst. New tenant ids: new_buckets (10) fresh bursts, plus
    # the overflow bucket's one.
    assert forwarded == (1 if invent == "key" else 11)
    assert reasons(admitted.items).count("rate_limited") == 300 - forwarded


async def test_delay_quarantines_what_would_wait_over_max_wait(
    tmp_path: Path, keyring: KeyRing
) -> None:
    policy = ingress_policy(
        tmp_path, {"rate_limit": {"rate": 1, "burst": 2, "over_limit": "delay", "max_wait": 3}}
    )
    records = [raw(payment(), offset=i) for i in range(8)]
    admitted = gate(policy, Clock()).admit(await parse(policy, keyring, records))
    # Two at once, then waits of 1, 2 and 3 s; the rest would wait longer.
    assert reasons(admitted.items) == [None] * 5 + ["rate_limited"] * 3
    assert admitted.wait == pytest.approx(3.0) and admitted.too_long == 3
    limited = admitted.items[5]
    assert isinstance(limited, Quarantine)
    assert limited.problems[0].detail == "over 1/s (burst 2): would wait over 3s"


async def test_rate_limit_comes_before_the_schema(tmp_path: Path, keyring: KeyRing) -> None:
    policy = ingress_policy(
        tmp_path,
        {"schema": SCHEMA, "rate_limit": {"rate": 1, "burst": 1, "over_limit": "quarantine"}},
    )
    records = [raw(payment(amount=-1), offset=0), raw(payment(), offset=1)]
    admitted = gate(policy, Clock()).admit(await parse(policy, keyring, records))
    # The invalid record took the tenant's one token: the valid one behind it is limited.
    assert reasons(admitted.items) == ["schema_invalid", "rate_limited"]


async def test_the_bucket_refills_on_the_clock(tmp_path: Path, keyring: KeyRing) -> None:
    policy = ingress_policy(
        tmp_path, {"rate_limit": {"rate": 2, "burst": 1, "over_limit": "quarantine"}}
    )
    clock = Clock()
    g = gate(policy, clock)
    one = await parse(policy, keyring, [raw(payment(), offset=0)])
    assert reasons(g.admit(one).items) == [None]
    assert reasons(g.admit(one).items) == ["rate_limited"]
    clock.now += 0.5
    assert reasons(g.admit(one).items) == [None]


async def test_tombstones_count_against_the_topics_tenant_and_skip_the_schema(
    tmp_path: Path, keyring: KeyRing
) -> None:
    policy = ingress_policy(
        tmp_path,
        {"schema": SCHEMA, "rate_limit": {"rate": 1, "burst": 1, "over_limit": "quarantine"}},
    )
    records = [raw(None, offset=0), raw(None, offset=1), raw(payment(), offset=2)]
    admitted = gate(policy, Clock()).admit(await parse(policy, keyring, records))
    # No tenant binding: tombstones share the tenant-less bucket; acme has its own.
    assert reasons(admitted.items) == [None, "rate_limited", None]
