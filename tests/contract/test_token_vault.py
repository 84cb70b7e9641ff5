"""The contract every token vault must pass: MemoryTokenVault and RedisTokenVault on a real
redis-server, each plain and behind the cache wrapper, the same checks on all four."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.contract.conftest import REDIS_PASSWORD, VaultBackendKind
from zoneapp.vault import StoredToken, TokenVault, VaultEntry, VaultUnavailableError


def entry(
    token: str, fingerprint: str = "fp", *, tenant: str = "acme", subject: str | None = None
) -> VaultEntry:
    return VaultEntry(
        tenant,
        "email",
        token,
        fingerprint,
        f"zenc2.ct-{token}-{fingerprint}",
        subject,
        "restricted",
    )


def tok() -> str:
    return f"tok_{uuid.uuid4().hex[:12]}"


async def test_store_then_fetch(vault: TokenVault) -> None:
    a, b = entry(tok(), "fa"), entry(tok(), "fb")
    before = time.time()
    assert await vault.store([a, b]) == []
    stored = await vault.fetch("acme", a.token)
    assert isinstance(stored, StoredToken)
    assert (stored.tenant, stored.token, stored.field_class) == ("acme", a.token, "email")
    assert (stored.fingerprint, stored.ciphertext, stored.zone) == (
        "fa",
        a.ciphertext,
        "restricted",
    )
    assert before - 1 <= stored.created <= time.time() + 1
    assert (await vault.fetch("acme", b.token)) is not None
    assert await vault.fetch("acme", tok()) is None
    assert await vault.fetch("globex", a.token) is None  # another tenant's mapping is not it
    assert await vault.store([]) == []


async def test_store_is_idempotent(vault: TokenVault) -> None:
    entries = [entry(tok(), f"f{i}") for i in range(20)]
    assert await vault.store(entries) == []
    assert await vault.store(entries) == []
    assert await vault.store(list(reversed(entries))) == []
    assert [(await vault.fetch("acme", e.token)) is not None for e in entries] == [True] * 20


async def test_another_value_under_a_stored_token_is_a_collision(vault: TokenVault) -> None:
    token = tok()
    first, second = entry(token, "first"), entry(token, "second")
    assert await vault.store([first]) == []
    assert await vault.store([second]) == [second]
    assert await vault.store([first, second, first]) == [second]
    stored = await vault.fetch("acme", token)
    assert stored is not None and stored.fingerprint == "first"  # first writer wins


async def test_collision_within_one_batch(vault: TokenVault) -> None:
    token = tok()
    a, b, again = entry(token, "a"), entry(token, "b"), entry(token, "a")
    other = entry(tok(), "x")
    assert await vault.store([a, b, other, again]) == [b]
    stored = await vault.fetch("acme", token)
    assert stored is not None and stored.fingerprint == "a"


async def test_tenants_are_separate(vault: TokenVault) -> None:
    token = tok()
    acme, globex = entry(token, "one", tenant="acme"), entry(token, "two", tenant="globex")
    empty = entry(token, "three", tenant="")  # policies without tenant_id
    assert await vault.store([acme, globex, empty]) == []
    for e in (acme, globex, empty):
        stored = await vault.fetch(e.tenant, token)
        assert stored is not None and stored.fingerprint == e.fingerprint


async def test_find_tenant(vault: TokenVault) -> None:
    token = tok()
    assert await vault.store([entry(token, tenant="globex")]) == []
    assert await vault.find_tenant(token) == "globex"
    assert await vault.find_tenant(tok()) is None


async def test_subject_keys_are_created_once(vault: TokenVault) -> None:
    created: list[tuple[str, str]] = []

    def create(tenant: str, subject: str) -> str:
        created.append((tenant, subject))
        return f"zenc2.key-{tenant}-{subject}-{len(created)}"

    wanted = [("acme", "s1"), ("acme", "s2"), ("globex", "s1")]
    first = await vault.subject_keys(wanted, create)
    assert sorted(created) == sorted(wanted)
    assert set(first) == set(wanted)
    again = await vault.subject_keys([*wanted, ("acme", "s3")], create)
    assert created[3:] == [("acme", "s3")]  # only the missing one
    assert {w: again[w] for w in wanted} == first
    assert await vault.fetch_subject_key("acme", "s1") == first[("acme", "s1")]
    assert await vault.fetch_subject_key("acme", "nobody") is None
    assert await vault.subject_keys([], create) == {}


async def test_erase_subject(vault: TokenVault) -> None:
    mine = [entry(tok(), f"m{i}", subject="alice") for i in range(3)]
    theirs = entry(tok(), "t", subject="bob")
    unindexed = entry(tok(), "u")
    assert await vault.store([*mine, theirs, unindexed]) == []
    await vault.subject_keys([("acme", "alice"), ("acme", "bob")], lambda t, s: f"key-{s}")
    assert await vault.erase_subject("acme", "alice") == 3
    for e in mine:
        assert await vault.fetch("acme", e.token) is None
    assert await vault.fetch_subject_key("acme", "alice") is None
    assert await vault.fetch("acme", theirs.token) is not None
    assert await vault.fetch("acme", unindexed.token) is not None
    assert await vault.fetch_subject_key("acme", "bob") == "key-bob"
    assert await vault.erase_subject("acme", "alice") == 0
    assert await vault.erase_subject("globex", "bob") == 0  # tenant-scoped
    # A token whose mapping was erased maps to nothing: storing the value again brings it back.
    assert await vault.store([mine[0]]) == []
    assert await vault.fetch("acme", mine[0].token) is not None


async def test_a_colliding_entry_is_not_indexed_under_its_subject(vault: TokenVault) -> None:
    token = tok()
    owner = entry(token, "owner", subject="alice")
    intruder = entry(token, "intruder", subject="mallory")
    assert await vault.store([owner]) == []
    assert await vault.store([intruder]) == [intruder]
    # Erasing the intruder's subject must not erase another value's mapping.
    assert await vault.erase_subject("acme", "mallory") == 0
    assert await vault.fetch("acme", token) is not None
    assert await vault.erase_subject("acme", "alice") == 1


async def test_writes_are_batched(vault: TokenVault) -> None:
    entries = [entry(tok(), f"f{i}", subject="s") for i in range(200)]
    trips, writes = vault.round_trips, vault.writes
    assert await vault.store(entries) == []
    assert 1 <= vault.round_trips - trips <= 3  # pipelines per batch, never per entry
    assert vault.writes - writes == 200


async def test_an_unavailable_vault_fails_closed(vault_backend: VaultBackendKind) -> None:
    vault = vault_backend.unavailable()
    try:
        calls = [
            vault.ping(),
            vault.store([entry(tok())]),
            vault.fetch("acme", "tok_x"),
            vault.find_tenant("tok_x"),
            vault.subject_keys([("acme", "s")], lambda t, s: "k"),
            vault.fetch_subject_key("acme", "s"),
            vault.erase_subject("acme", "s"),
        ]
        for call in calls:
            with pytest.raises(VaultUnavailableError) as info:
                await call
            assert REDIS_PASSWORD not in str(info.value)
    finally:
        await vault.close()


async def test_repr_shows_no_secret_or_value(vault: TokenVault) -> None:
    e = entry(tok(), "fingerprint-secret")
    await vault.store([e])
    text = repr(vault)
    for secret in (REDIS_PASSWORD, e.token, e.ciphertext, "fingerprint-secret"):
        assert secret not in text
    assert e.ciphertext not in repr(e) and e.ciphertext not in repr(
        await vault.fetch("acme", e.token)
    )


async def test_close_is_idempotent(vault_backend: VaultBackendKind) -> None:
    vault = vault_backend.vault()
    await vault.ping()
    await vault.close()
    await vault.close()
