"""The cache wrapper alone, around the real in-memory vault: hits never reach the vault,
only confirmed mappings are cached, collisions are found in the cache, erasure empties it."""

from __future__ import annotations

from zoneapp.vault import (
    NO_KNOWN_TOKENS,
    CachingTokenVault,
    MemoryTokenVault,
    StoredTokenCache,
    VaultEntry,
)


def entry(token: str, fingerprint: str = "fp", subject: str | None = None) -> VaultEntry:
    return VaultEntry("acme", "email", token, fingerprint, f"zenc2.{token}", subject)


async def test_hits_are_served_without_calling_the_inner_vault() -> None:
    inner = MemoryTokenVault()
    cached = CachingTokenVault(inner)
    batch = [entry(f"tok_{i}", f"f{i}") for i in range(50)]
    assert await cached.store(batch) == []
    assert inner.round_trips == 1
    inner.available = False  # any call to the inner vault would now raise
    assert await cached.store(batch) == []
    assert await cached.store([*batch, batch[0]]) == []
    # A different value under a cached token is a collision, also found without asking.
    clash = entry("tok_3", "someone-else")
    assert await cached.store([batch[1], clash]) == [clash]
    assert inner.round_trips == 1 and cached.round_trips == 1


async def test_only_unknown_entries_reach_the_inner_vault() -> None:
    inner = MemoryTokenVault()
    cached = CachingTokenVault(inner)
    await cached.store([entry("tok_a")])
    writes = inner.writes
    await cached.store([entry("tok_a"), entry("tok_b"), entry("tok_c")])
    assert inner.writes - writes == 2 and inner.round_trips == 2
    assert len(cached.cache) == 3


async def test_only_confirmed_mappings_are_cached() -> None:
    inner = MemoryTokenVault()
    await inner.store([entry("tok_taken", "owner")])
    cached = CachingTokenVault(inner)
    intruder = entry("tok_taken", "intruder")
    assert await cached.store([intruder]) == [intruder]
    assert cached.known.fingerprint("acme", "tok_taken") is None  # not the intruder's
    # In one batch the first writer is cached, its colliding twin is not.
    first, twin = entry("tok_new", "a"), entry("tok_new", "b")
    assert await cached.store([first, twin]) == [twin]
    assert cached.known.fingerprint("acme", "tok_new") == "a"


async def test_known_is_the_cache_and_plain_vaults_know_nothing() -> None:
    inner = MemoryTokenVault()
    cached = CachingTokenVault(inner)
    await cached.store([entry("tok_k", "fk")])
    assert cached.known is cached.cache
    assert cached.known.fingerprint("acme", "tok_k") == "fk"
    assert cached.known.fingerprint("globex", "tok_k") is None  # keyed by tenant too
    assert inner.known is NO_KNOWN_TOKENS
    assert inner.known.fingerprint("acme", "tok_k") is None


async def test_erasure_empties_the_cache() -> None:
    inner = MemoryTokenVault()
    cached = CachingTokenVault(inner)
    mine = entry("tok_m", "fm", subject="alice")
    await cached.store([mine, entry("tok_o", "fo")])
    assert await cached.erase_subject("acme", "alice") == 1
    assert len(cached.cache) == 0
    # The erased token's value seen again is written again, not answered from the cache.
    assert await cached.store([mine]) == []
    assert await cached.fetch("acme", "tok_m") is not None


async def test_a_full_cache_never_reports_a_false_collision() -> None:
    cached = CachingTokenVault(MemoryTokenVault(), capacity=3)
    batch = [entry(f"tok_{i}", f"f{i}") for i in range(10)]
    assert await cached.store(batch) == []  # entries evicted within the batch are not clashes
    assert len(cached.cache) == 3
    assert await cached.store(batch) == []


def test_lru_is_bounded_and_keeps_the_recent() -> None:
    lru = StoredTokenCache(capacity=2)
    lru.add("t", "a", "1")
    lru.add("t", "b", "2")
    lru.add("t", "a", "1")  # touch a: b is now the oldest
    lru.add("t", "c", "3")
    assert ("t", "a") in lru and ("t", "b") not in lru and len(lru) == 2
    lru.discard("t", "a")
    assert lru.fingerprint("t", "a") is None
    lru.clear()
    assert len(lru) == 0


async def test_the_wrapper_delegates_everything_else() -> None:
    inner = MemoryTokenVault()
    cached = CachingTokenVault(inner)
    await cached.store([entry("tok_d", "fd")])
    assert await cached.find_tenant("tok_d") == "acme"
    keys = await cached.subject_keys([("acme", "s")], lambda t, s: "wrapped")
    assert (
        keys == {("acme", "s"): "wrapped"} == {("acme", "s"): inner.subject_key_data[("acme", "s")]}
    )
    assert await cached.fetch_subject_key("acme", "s") == "wrapped"
    await cached.ping()
    assert cached.inner is inner and "MemoryTokenVault" in repr(cached)
    await cached.close()
