"""Detokenize, decrypt and erase with real in-memory keys and vault: zone, tenant and
field binding, the audit trail, and erasure."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.fixtures import POLICY
from tests.records import EMAIL, IBAN, PHONE, payment, raw
from zoneapp.access.erasure import erase_subject
from zoneapp.access.fields import AccessError, FieldAccess
from zoneapp.core.sanitizer import SUBJECT_PURPOSE, subject_hash
from zoneapp.keys import Aad, parse_ciphertext_header, subject
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.keys.subject import wrap_aad
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.vault import MemoryTokenVault, StoredToken


class MemoryAudit:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def write(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy(POLICY)


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
    from zoneapp.access.fields import audit_event

    event = audit_event(
        who="x",
        action="detokenize",
        zone="restricted",
        tenant="acme",
        outcome="allowed",
        token=value,
    )
    if kept:
        assert event["token"] == value
    else:
        assert event["token"].startswith("sha256:") and len(event["token"]) < 64
        assert event["token"].endswith(f":{len(value)}")
        assert value[:8] not in event["token"]


# -- issue 8, item 1: /decrypt and tenant scope -----------------------------------------------


def scoped(tenant: str) -> Callable[[str | None], bool]:
    """What ``officer:restricted:<tenant>`` may see (Principal.may_resolve)."""
    return lambda owner: owner == tenant


async def test_decrypt_refuses_another_tenants_ciphertext(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    globex = await sanitized(policy, keyring, vault, tenant_id="globex")
    phone = globex["customer"]["phone"]
    assert parse_ciphertext_header(phone).tenant == "globex"
    audit = MemoryAudit()
    access = FieldAccess("restricted", keyring, vault, audit)
    where = ("confidential.payments", "customer.phone")
    # The reproduction: officer:restricted:acme names tenant=acme and sends globex's value.
    for kwargs in (
        {"may_see": scoped("acme"), "tenant": "acme"},
        {"may_see": scoped("acme")},
        {"tenant": "acme"},  # even an unscoped officer gets no value under the wrong tenant
    ):
        with pytest.raises(AccessError) as info:
            await access.decrypt("acme-officer", phone, *where, **kwargs)  # type: ignore[arg-type]
        assert info.value.reason == "wrong_tenant"
    assert await access.decrypt("globex-officer", phone, *where, may_see=scoped("globex"))
    assert await access.decrypt("dpo", phone, *where) == orjson.dumps(PHONE)
    assert [e["outcome"] for e in audit.events] == [
        "refused:wrong_tenant",
        "refused:wrong_tenant",
        "refused:wrong_tenant",
        "allowed",
        "allowed",
    ]
    # Every audit event names the ciphertext's tenant (and the one the caller asked for).
    assert all(e["tenant"] == "globex" for e in audit.events)
    assert audit.events[0]["requested_tenant"] == "acme"
    assert PHONE not in orjson.dumps(audit.events).decode()


async def test_decrypt_of_v1_ciphertexts_still_works_and_is_tenant_checked(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    """zenc1 names no tenant: unscoped officers still read it, scoped ones only when the
    subject-sealed layer names their tenant."""
    await keyring.prepare()
    plain = keyring.encrypt_legacy_v1(
        "restricted", b'"DE89"', b"confidential.payments|billing.iban"
    )
    audit = MemoryAudit()
    access = FieldAccess("restricted", keyring, vault, audit)
    where = ("confidential.payments", "billing.iban")
    assert await access.decrypt("dpo", plain, *where) == b'"DE89"'
    with pytest.raises(AccessError) as info:
        await access.decrypt("acme-officer", plain, *where, may_see=scoped("acme"))
    assert info.value.reason == "wrong_tenant"
    assert [e["tenant"] for e in audit.events] == [None, None]
    assert all("tenant" in e for e in audit.events)

    # A V1 field sealed with a subject key names its tenant in the sealed layer.
    subject_key = os.urandom(32)
    vault.subject_key_data[("globex", "subj")] = keyring.encrypt(
        "restricted", subject_key, wrap_aad("globex", "subj")
    )
    legacy = b"confidential.payments|customer.phone"
    sealed = subject.seal(AESGCM(subject_key), "globex", "subj", b'"+1 555"', legacy)
    v1 = keyring.encrypt_legacy_v1("restricted", sealed, legacy)
    phone = ("confidential.payments", "customer.phone")
    assert await access.decrypt("g", v1, *phone, may_see=scoped("globex")) == b'"+1 555"'
    with pytest.raises(AccessError) as info:
        await access.decrypt("a", v1, *phone, may_see=scoped("acme"))
    assert info.value.reason == "wrong_tenant"
    assert [e["tenant"] for e in audit.events[2:]] == ["globex", "globex"]


# -- issue 8, item 2: /decrypt opens only record fields -----------------------------------------


async def test_decrypt_never_opens_vault_entries_or_subject_keys(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    doc = await sanitized(policy, keyring, vault)
    token = doc["customer"]["email"]
    stored = await vault.fetch("acme", token)
    assert stored is not None
    [(tenant_subject, wrapped_key)] = vault.subject_key_data.items()
    audit = MemoryAudit()
    access = FieldAccess("restricted", keyring, vault, audit)
    attempts = [
        (stored.ciphertext, "zoneapp/vault/v1", f"acme\x1f{stored.field_class}\x1f{token}"),
        (stored.ciphertext, "zoneapp/vault/v2", f"{stored.field_class}\x1f{token}"),
        (stored.ciphertext, stored.field_class, token),
        (wrapped_key, "zoneapp/skey/v1", "\x1f".join(tenant_subject)),
        (wrapped_key, "zoneapp/skey/v2", tenant_subject[1]),
    ]
    for ciphertext, topic, field in attempts:
        with pytest.raises(AccessError) as info:
            await access.decrypt("dpo", ciphertext, topic, field)
        assert info.value.reason == "not_a_field"

    # Entries written before V2 (zenc1) cannot be opened as fields either, and still
    # detokenize.
    legacy = Aad.vault("acme", stored.field_class, token).legacy
    assert legacy is not None
    v1 = keyring.encrypt_legacy_v1("restricted", EMAIL.encode(), legacy)
    vault.data[("acme", token)] = StoredToken(
        "acme", token, stored.field_class, stored.fingerprint, v1, stored.created, "restricted"
    ).encode()
    v1_key = keyring.encrypt_legacy_v1(
        "restricted", b"k" * 32, Aad.subject_key(*tenant_subject).legacy or b""
    )
    for ciphertext, topic, field in (
        (v1, "zoneapp/vault/v1", f"acme\x1f{stored.field_class}\x1f{token}"),
        (v1_key, "zoneapp/skey/v1", "\x1f".join(tenant_subject)),
    ):
        with pytest.raises(AccessError) as info:
            await access.decrypt("dpo", ciphertext, topic, field)
        assert info.value.reason == "malformed"  # not a Kafka topic: no V1 field context
    assert await access.detokenize("dpo", "acme", token) == EMAIL.encode()
    assert EMAIL not in orjson.dumps(audit.events).decode()


# -- issue 8, item 15: erasure finds every spelling of a subject ---------------------------------


async def test_erasing_a_subject_erases_its_other_spellings(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    shouting = await sanitized(
        policy, keyring, vault, customer={"email": "  Jane.Doe@Example.COM", "phone": PHONE}
    )
    other = await sanitized(
        policy, keyring, vault, customer={"email": "john@example.com", "phone": PHONE}
    )
    access = FieldAccess("restricted", keyring, vault, MemoryAudit())
    where = ("confidential.payments", "customer.phone")
    assert await access.decrypt("dpo", shouting["customer"]["phone"], *where)
    erased = await erase_subject(policy, keyring, vault, "acme", "jane.doe@example.com")
    assert erased == 2  # the e-mail token and the card token written for that subject
    with pytest.raises(AccessError) as gone:
        await access.detokenize("dpo", "acme", shouting["customer"]["email"])
    assert gone.value.reason == "unknown_token"
    with pytest.raises(AccessError) as shredded:
        await access.decrypt("dpo", shouting["customer"]["phone"], *where)
    assert shredded.value.reason == "erased"
    assert await access.detokenize("dpo", "acme", other["customer"]["email"])


async def test_erasure_also_finds_mappings_indexed_before_normalization(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    keyring.require_hmac("restricted", SUBJECT_PURPOSE)
    await keyring.prepare()
    key = keyring.hmac_key("restricted", SUBJECT_PURPOSE)
    legacy = subject_hash(key, "acme", "Jane.Doe@Example.com")  # the id as it was hashed
    vault.subjects[("acme", legacy)] = {"tok_legacy"}
    vault.data[("acme", "tok_legacy")] = b'{"c":"email","f":"x","x":"zenc1.x","t":0}'
    assert await erase_subject(policy, keyring, vault, "acme", "Jane.Doe@Example.com") == 1
    assert ("acme", "tok_legacy") not in vault.data
