"""API keys: hashed configuration, constant-time checks, roles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zoneapp.web.auth import (
    ApiKeys,
    AuthConfigError,
    Authenticator,
    Principal,
    RateLimited,
    Role,
    Unauthorized,
    hash_key,
)

KEY = "zk_test-key-0123456789abcdefghijkl"


def keys_with(*entries: dict[str, object]) -> ApiKeys:
    return ApiKeys.from_mapping({"keys": list(entries)})


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("viewer", Role("viewer")),
        ("analyst", Role("analyst")),
        ("admin", Role("admin")),
        ("officer:restricted", Role("officer", "restricted")),
        ("officer:restricted:acme", Role("officer", "restricted", "acme")),
    ],
)
def test_roles_parse(text: str, role: Role) -> None:
    assert Role.parse(text) == role
    assert str(role) == text


@pytest.mark.parametrize(
    "text", ["admin:x", "root", "officer", "officer:", "viewer:x", "officer:a:b:c"]
)
def test_bad_roles_are_refused(text: str) -> None:
    with pytest.raises(AuthConfigError):
        Role.parse(text)


def test_admin_changes_the_policy_and_sees_nothing_else() -> None:
    """``admin`` reloads and promotes the policy (zoneapp.web.policy); it is no viewer,
    analyst or officer, and no other role changes the policy."""
    admin = Principal("ops", frozenset({Role("admin")}))
    assert admin.may_change_policy()
    assert not admin.may_view_stats() and not admin.may_view_violations()
    assert not admin.officer_zones() and not admin.may_resolve("restricted")
    for other in ("viewer", "analyst", "officer:restricted"):
        assert not Principal("x", frozenset({Role.parse(other)})).may_change_policy()


def test_scrypt_hash_authenticates_and_names_the_entry() -> None:
    keys = keys_with({"name": "ops", "hash": hash_key(KEY, n=2**10), "roles": ["viewer"]})
    principal = keys.authenticate(f"Bearer {KEY}")
    assert principal.name == "ops"
    assert principal.may_view_stats() and not principal.may_view_violations()
    # The second call is answered from the verified-key cache, same result.
    assert keys.authenticate(f"bearer {KEY}") == principal


def test_sha256_entries_are_accepted() -> None:
    import hashlib

    digest = hashlib.sha256(KEY.encode()).hexdigest()
    keys = keys_with({"name": "soc", "sha256": digest, "roles": ["analyst"]})
    assert keys.authenticate(f"Bearer {KEY}").may_view_violations()


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer wrong-key"])
def test_missing_or_unknown_keys_are_unauthorized(header: str | None) -> None:
    keys = keys_with({"name": "ops", "hash": hash_key(KEY, n=2**10), "roles": ["viewer"]})
    with pytest.raises(Unauthorized):
        keys.authenticate(header)


def test_officer_scope() -> None:
    p = Principal(
        "o", frozenset({Role.parse("officer:restricted:acme"), Role.parse("officer:internal")})
    )
    assert p.may_resolve("restricted", "acme")
    assert not p.may_resolve("restricted", "globex")
    assert p.may_resolve("internal", "anyone")
    assert not p.may_resolve("confidential", "acme")
    assert not p.may_view_stats()


def test_bad_files_name_the_problem_never_the_hash(tmp_path: Path) -> None:
    secret_hash = "scrypt$1024$8$1$c2FsdA$bm90LWEtcmVhbC1kaWdlc3Q"
    path = tmp_path / "keys.yaml"
    path.write_text(f'keys:\n  - {{name: a, hash: "{secret_hash}", roles: [root]}}\n')
    with pytest.raises(AuthConfigError) as err:
        ApiKeys.load(path)
    assert "root" in str(err.value) and secret_hash not in str(err.value)
    path.write_text('keys:\n  - {name: a, hash: "md5$abc", roles: [viewer]}\n')
    with pytest.raises(AuthConfigError, match="hash must be"):
        ApiKeys.load(path)
    with pytest.raises(AuthConfigError):
        ApiKeys.load(tmp_path / "missing.yaml")


def test_no_file_means_no_key_is_valid() -> None:
    with pytest.raises(Unauthorized):
        ApiKeys.load(None).authenticate(f"Bearer {KEY}")


FAUST = str(Path(sys.executable).with_name("faust"))


def test_hash_command_reads_stdin_and_prints_a_verifiable_hash() -> None:
    out = subprocess.run(
        [FAUST, "-A", "zoneapp", "hash-api-key"],
        input=KEY + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    line = out.stdout.strip()
    assert line.startswith("scrypt$") and KEY not in out.stdout + out.stderr
    keys = keys_with({"name": "cli", "hash": line, "roles": ["viewer"]})
    assert keys.authenticate(f"Bearer {KEY}").name == "cli"


def test_hash_command_makes_a_new_key_that_its_hash_accepts() -> None:
    out = subprocess.run(
        [FAUST, "-A", "zoneapp", "hash-api-key", "--new"],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    fields = dict(line.split(":", 1) for line in out.stdout.strip().splitlines())
    key, hashed = fields["key"].strip(), fields["hash"].strip()
    keys = keys_with({"name": "new", "hash": hashed, "roles": ["viewer"]})
    assert keys.authenticate(f"Bearer {key}").name == "new"


def test_the_hash_command_refuses_an_empty_key() -> None:
    out = subprocess.run(
        [FAUST, "-A", "zoneapp", "hash-api-key"], input="\n", capture_output=True, text=True
    )
    assert out.returncode == 2 and "usage" in out.stderr


# -- authentication cost (issue 8, item 5) ---------------------------------------------------


def sha256_entry(name: str, key: str, roles: list[str]) -> dict[str, object]:
    import hashlib

    return {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(), "roles": roles}


def test_bogus_keys_never_evict_a_good_key() -> None:
    keys = keys_with(sha256_entry("ops", KEY, ["viewer"]))
    assert keys.authenticate(f"Bearer {KEY}").name == "ops"
    for i in range(3000):
        with pytest.raises(Unauthorized):
            keys.authenticate(f"Bearer zk_bogus-{i:06d}")
    hashed = keys.verifications
    assert hashed == 3001
    assert keys.authenticate(f"Bearer {KEY}").name == "ops"
    assert keys.verifications == hashed  # answered from the good-key cache, not hashed again


async def test_sources_are_limited_before_hashing() -> None:
    keys = keys_with(sha256_entry("ops", KEY, ["viewer"]))
    gate = Authenticator(lambda: keys, rate=1, burst=2, clock=lambda: 0.0)
    assert (await gate.authenticate(f"Bearer {KEY}", "10.0.0.1")).name == "ops"
    with pytest.raises(Unauthorized):
        await gate.authenticate("Bearer zk_bogus-1", "10.0.0.1")
    with pytest.raises(RateLimited) as limited:
        await gate.authenticate("Bearer zk_bogus-2", "10.0.0.1")
    assert limited.value.retry_after >= 1.0
    assert keys.verifications == 2  # the third key was never hashed
    # The same bogus key again is refused from the negative cache, without budget.
    with pytest.raises(Unauthorized):
        await gate.authenticate("Bearer zk_bogus-1", "10.0.0.1")
    # A key that verified before still works from the limited source; other sources hash.
    assert (await gate.authenticate(f"Bearer {KEY}", "10.0.0.1")).name == "ops"
    with pytest.raises(Unauthorized):
        await gate.authenticate("Bearer zk_bogus-3", "10.0.0.2")
    assert keys.verifications == 3
    gate.close()


async def test_key_hashing_never_blocks_the_event_loop() -> None:
    """Three scrypt entries at full cost; fresh bogus keys from several sources at once."""
    import asyncio
    import time

    entries: list[dict[str, object]] = [
        {"name": f"k{i}", "hash": hash_key(f"{KEY}-{i}"), "roles": ["viewer"]} for i in range(3)
    ]
    keys = keys_with(*entries)
    started = time.perf_counter()
    with pytest.raises(Unauthorized):
        keys.authenticate("Bearer zk_bogus-sync")
    blocking = time.perf_counter() - started  # what today's event loop would lose per key
    gate = Authenticator(lambda: keys, rate=10, burst=10)
    worst = 0.0
    done = False

    async def heartbeat() -> None:
        nonlocal worst
        while not done:
            t = time.perf_counter()
            await asyncio.sleep(0.002)
            worst = max(worst, time.perf_counter() - t)

    beat = asyncio.create_task(heartbeat())
    results = await asyncio.gather(
        *(gate.authenticate(f"Bearer zk_bogus-{i}", f"10.0.0.{i}") for i in range(4)),
        return_exceptions=True,
    )
    done = True
    await beat
    gate.close()
    assert all(isinstance(r, Unauthorized) for r in results)
    assert blocking > 0.06
    assert worst < blocking / 2, (worst, blocking)


async def test_waiting_verifications_are_bounded() -> None:
    import asyncio

    keys = keys_with({"name": "k", "hash": hash_key(KEY), "roles": ["viewer"]})
    gate = Authenticator(lambda: keys, rate=100, burst=100, max_pending=2)
    results = await asyncio.gather(
        *(gate.authenticate(f"Bearer zk_bogus-{i}", f"10.1.0.{i}") for i in range(6)),
        return_exceptions=True,
    )
    gate.close()
    assert sum(isinstance(r, RateLimited) for r in results) == 4
    assert keys.verifications == 2
