"""The batch loop: nothing lost, nothing unsanitized, and fail-closed on dependency faults."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fixtures import POLICY
from tests.records import CARD, SENSITIVE, colliding_cards, payment, raw
from zoneapp.access.fields import FieldAccess
from zoneapp.core.sanitizer import RawRecord
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.transforms import RecordContext
from zoneapp.vault import CachingTokenVault, MemoryTokenVault


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy(POLICY)


def make_guard(
    policy: CompiledPolicy,
    keyring: KeyRing,
    vault: MemoryTokenVault,
    sink: MemorySink,
    **kw: Any,
) -> BoundaryGuard:
    """A guard on the vault as the runtime composes it: behind the cache wrapper."""
    return BoundaryGuard(
        policy,
        policy.boundary("payments-to-confidential"),
        keyring,
        CachingTokenVault(vault),
        sink,
        **kw,
    )


def mixed_batch() -> list[RawRecord]:
    return [
        raw(payment(), offset=0),
        raw(payment(notes=f"card {CARD}"), offset=1),
        raw(b"{broken", offset=2),
        raw(b"\xff\xff", offset=3),
        raw(payment(payment_id="p2", customer={"email": "x@y.example"}), offset=4),
    ]


async def test_every_record_is_forwarded_or_quarantined(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    sink = MemorySink()
    guard = make_guard(policy, keyring, vault, sink)
    await guard.handle(mixed_batch())
    forwarded = sink.on("confidential.payments")
    quarantined = sink.on("restricted.quarantine")
    violations = sink.on("security.violations")
    assert len(forwarded) == 2 and len(quarantined) == 3 and len(violations) == 3
    offsets = sorted(
        int(dict(h)["zoneapp-source-offset"]) for _, _, _, h in forwarded + quarantined
    )
    assert offsets == [0, 1, 2, 3, 4]
    stats = guard.stats
    assert (stats.consumed, stats.forwarded, stats.quarantined, stats.in_flight) == (5, 2, 3, 0)
    assert stats.reasons == {"dlp": 1, "invalid_json": 1, "invalid_utf8": 1}
    # The quarantine holds the original bytes, in the source zone.
    assert quarantined[1][2] == b"{broken"
    # Violation events: complete and value-free.
    events = [orjson.loads(v or b"") for _, _, v, _ in violations]
    first = events[0]
    assert (
        first["reason"] == "dlp"
        and first["detector"] == "CREDIT_CARD"
        and first["field_path"] == "notes"
    )
    assert first["source"] == {
        "zone": "restricted",
        "topic": "restricted.payments",
        "partition": 1,
        "offset": 1,
    }
    assert first["policy_version"] == "unit-fixture.1" and first["action"] == "quarantined"
    assert len(first["trace_id"]) == 32 and first["id"] and first["timestamp"].endswith("Z")
    for _, _, v, _ in violations:
        for secret in SENSITIVE:
            assert secret.encode() not in (v or b"")
    # Token mappings were stored before the records were produced.
    assert len(vault.data) == 3


async def test_vault_outage_holds_the_batch_until_it_returns(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    sink = MemorySink()
    vault.available = False
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        assert sink.sent == []  # nothing goes out while the vault is down
        if len(sleeps) == 5:
            vault.available = True

    guard = make_guard(policy, keyring, vault, sink, sleep=sleep)
    await guard.handle([raw(payment(), offset=0)])
    assert sleeps == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert len(sink.on("confidential.payments")) == 1
    assert guard.stats.dependency_retries == 5 and guard.stats.waiting_on is None


async def test_hsm_outage_holds_the_batch(policy: CompiledPolicy, vault: MemoryTokenVault) -> None:
    provider = MemoryKeyProvider()
    await provider.provision(["restricted"])
    await provider.open(["restricted"])
    keyring = KeyRing(provider, ["restricted"])
    provider.store.available = False
    sink = MemorySink()
    waits = 0

    async def sleep(delay: float) -> None:
        nonlocal waits
        waits += 1
        assert sink.sent == []
        if waits == 3:
            provider.store.available = True

    guard = make_guard(policy, keyring, vault, sink, sleep=sleep)
    await guard.handle([raw(payment(), offset=0)])
    assert waits == 3 and len(sink.on("confidential.payments")) == 1


async def test_token_collision_is_quarantined(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    sink = MemorySink()
    guard = make_guard(policy, keyring, vault, sink)
    await guard.handle([raw(payment(), offset=0)])
    # Another value already holds the same token (forged fingerprint): must not forward.
    key = next(iter(vault.data))
    doc = orjson.loads(vault.data[key])
    doc["f"] = "someone-else"
    vault.data[key] = orjson.dumps(doc)
    guard = make_guard(policy, keyring, vault, sink)  # a cold cache: ask the vault again
    sink.sent.clear()
    await guard.handle([raw(payment(), offset=1)])
    assert sink.on("confidential.payments") == []
    assert orjson.loads(sink.on("security.violations")[0][2] or b"")["reason"] == "token_collision"


async def test_vault_writes_are_batched(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    guard = make_guard(policy, keyring, vault, MemorySink())
    await guard.handle([raw(payment(payment_id=f"p{i}"), offset=i) for i in range(50)])
    # One pipeline for the subject keys, one for the token mappings: not one per record.
    assert vault.round_trips == 2
    await guard.handle([raw(payment(payment_id=f"q{i}"), offset=i) for i in range(50)])
    # All tokens known: only the per-batch subject-key check (it notices erasures).
    assert vault.round_trips == 3


# -- issue 8, item 12: token collisions are never merged -------------------------------------


async def colliding(policy: CompiledPolicy, keyring: KeyRing) -> tuple[str, str, str]:
    """A real colliding pair of card numbers under this key ring's card-token key."""
    rule = policy.boundary("payments-to-confidential").fields.children["card_number"].rule
    assert rule is not None
    tokenize = rule.transform
    for purpose in tokenize.hmac_purposes:
        keyring.require_hmac(tokenize.spec.zone, purpose)
    await keyring.prepare()
    ctx = RecordContext(keyring=keyring, zone="restricted", topic="t", tenant="acme")
    return colliding_cards(tokenize, ctx)


def verdicts(sink: MemorySink) -> tuple[list[str], list[str]]:
    forwarded = [
        orjson.loads(v or b"")["payment_id"] for _, _, v, *_ in sink.on("confidential.payments")
    ]
    reasons = [orjson.loads(v or b"")["reason"] for _, _, v, *_ in sink.on("security.violations")]
    return forwarded, reasons


async def detokenized(keyring: KeyRing, vault: MemoryTokenVault, token: str) -> bytes:
    return await FieldAccess("restricted", keyring, vault, NoAudit()).detokenize("t", "acme", token)


class NoAudit:
    async def write(self, event: dict[str, Any]) -> None:
        return None


async def test_colliding_cards_in_one_batch_forward_only_the_first(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    first, second, token = await colliding(policy, keyring)
    sink = MemorySink()
    guard = make_guard(policy, keyring, vault, sink)
    await guard.handle(
        [
            raw(payment(payment_id="p1", card_number=first), offset=0),
            raw(payment(payment_id="p2", card_number=second), offset=1),
            raw(payment(payment_id="p3", card_number=first), offset=2),  # a true duplicate
        ]
    )
    assert verdicts(sink) == (["p1", "p3"], ["token_collision"])
    assert await detokenized(keyring, vault, token) == first.encode()


async def test_colliding_card_with_a_warm_cache_is_quarantined(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    first, second, token = await colliding(policy, keyring)
    sink = MemorySink()
    guard = make_guard(policy, keyring, vault, sink)
    await guard.handle([raw(payment(payment_id="p1", card_number=first), offset=0)])
    assert guard.vault.known.fingerprint("acme", token) is not None  # the cache knows it
    await guard.handle([raw(payment(payment_id="p2", card_number=second), offset=1)])
    await guard.handle([raw(payment(payment_id="p3", card_number=first), offset=2)])
    assert verdicts(sink) == (["p1", "p3"], ["token_collision"])
    event = orjson.loads(sink.on("security.violations")[0][2] or b"")
    assert event["field_path"] == "card_number" and second not in orjson.dumps(event).decode()
    assert await detokenized(keyring, vault, token) == first.encode()
    # A cold worker (empty cache) learns the collision from the vault.
    cold = MemoryTokenVault()
    cold.data = vault.data
    sink.sent.clear()
    await make_guard(policy, keyring, cold, sink).handle(
        [raw(payment(payment_id="p4", card_number=second), offset=3)]
    )
    assert verdicts(sink) == ([], ["token_collision"])
