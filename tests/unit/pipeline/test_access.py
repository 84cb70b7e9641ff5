"""Detokenize, decrypt and erase with real in-memory keys and vault: zone, tenant and
field binding, the audit trail, and erasure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.records import EMAIL, IBAN, payment, raw
from zoneapp.access import AccessError, FieldAccess
from zoneapp.guard import BoundaryGuard
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.sanitizer import SUBJECT_PURPOSE, subject_hash
from zoneapp.sink import MemorySink
from zoneapp.vault import MemoryTokenVault

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "policies" / "ecommerce.yaml"


class MemoryAudit:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def write(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy(EXAMPLE)


async def sanitized(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault, **overrides: Any
) -> dict[str, Any]:
    sink = MemorySink()
    guard = BoundaryGuard(policy, policy.boundary("payments-to-confidential"), keyring, vault, sink)
    await guard.handle([raw(payment(**overrides))])
    return orjson.loads(sink.on("confidential.payments")[0][2] or b"")  # type: ignore[no-any-return]


async def test_detokenize_is_audited_and_tenant_bound(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    doc = await sanitized(policy, keyring, vault)
    token = doc["customer"]["email"]
    audit = MemoryAudit()
    access = FieldAccess("restricted", keyring, vault, audit)
    assert await access.detokenize("alice", "acme", token) == EMAIL.encode()
    with pytest.raises(AccessError) as info:
        await access.detokenize("alice", "globex", token)
    assert info.value.reason == "unknown_token"
    assert [e["outcome"] for e in audit.events] == ["allowed", "refused:unknown_token"]
    assert audit.events[0]["who"] == "alice" and audit.events[0]["field_class"] == "email"
    assert EMAIL not in orjson.dumps(audit.events).decode()


async def test_decrypt_binds_topic_and_field_and_zone(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    doc = await sanitized(policy, keyring, vault)
    ciphertext = doc["billing"]["iban"]
    audit = MemoryAudit()
    access = FieldAccess("restricted", keyring, vault, audit)
    plain = await access.decrypt("bob", ciphertext, "confidential.payments", "billing.iban")
    assert orjson.loads(plain) == IBAN
    with pytest.raises(AccessError, match="altered") as info:
        await access.decrypt("bob", ciphertext, "confidential.payments", "customer.phone")
    assert info.value.reason == "tampered"
    other = FieldAccess("confidential", keyring, vault, audit)
    with pytest.raises(AccessError) as wrong:
        await other.decrypt("bob", ciphertext, "confidential.payments", "billing.iban")
    assert wrong.value.reason == "wrong_zone"
    with pytest.raises(AccessError) as bad:
        await access.decrypt("bob", "zenc1.AAAA", "confidential.payments", "billing.iban")
    assert bad.value.reason == "malformed"
    assert IBAN not in orjson.dumps(audit.events).decode()


async def test_lower_zone_process_cannot_decrypt_higher_zone_data(
    policy: CompiledPolicy, keyring: KeyRing, provider: MemoryKeyProvider, vault: MemoryTokenVault
) -> None:
    doc = await sanitized(policy, keyring, vault)
    lower = MemoryKeyProvider(provider.store)
    await lower.open(["confidential"])
    access = FieldAccess("restricted", KeyRing(lower, ["confidential"]), vault, MemoryAudit())
    with pytest.raises(AccessError) as info:
        await access.decrypt("eve", doc["billing"]["iban"], "confidential.payments", "billing.iban")
    assert info.value.reason == "wrong_zone"


async def test_erase_subject_makes_tokens_irreversible(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    mine = await sanitized(policy, keyring, vault)
    other = await sanitized(
        policy, keyring, vault, customer={"email": "someone@else.example", "name": "X"}
    )
    keyring.require_hmac("restricted", SUBJECT_PURPOSE)
    await keyring.prepare()
    key = keyring.hmac_key("restricted", SUBJECT_PURPOSE)
    erased = await vault.erase_subject("acme", subject_hash(key, "acme", EMAIL))
    assert erased == 2  # the email token and the card token of that subject
    access = FieldAccess("restricted", keyring, vault, MemoryAudit())
    with pytest.raises(AccessError):
        await access.detokenize("dpo", "acme", mine["customer"]["email"])
    # Another subject's tokens are untouched.
    assert (
        await access.detokenize("dpo", "acme", other["customer"]["email"])
        == b"someone@else.example"
    )
    # Re-erasing finds nothing.
    assert await vault.erase_subject("acme", subject_hash(key, "acme", EMAIL)) == 0


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("tok_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef", True),
        ("billing.iban", True),
        ("x" * 256, True),
        ("x" * 257, False),
        ("tok_" + "Q" * 100_000, False),
        ("line\nbreak", False),  # no forged lines in a log or a terminal
        ("esc\x1b[31m", False),
    ],
)
def test_audit_events_bound_caller_strings(value: str, kept: bool) -> None:
    from zoneapp.access import audit_event

    event = audit_event(
        who="x", action="detokenize", zone="restricted", outcome="allowed", token=value
    )
    if kept:
        assert event["token"] == value
    else:
        assert event["token"].startswith("sha256:") and len(event["token"]) < 64
        assert event["token"].endswith(f":{len(value)}")
        assert value[:8] not in event["token"]
