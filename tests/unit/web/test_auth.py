"""API keys: hashed configuration, constant-time checks, roles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zoneapp.web.auth import (
    ApiKeys,
    AuthConfigError,
    Principal,
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
        ("officer:restricted", Role("officer", "restricted")),
        ("officer:restricted:acme", Role("officer", "restricted", "acme")),
    ],
)
def test_roles_parse(text: str, role: Role) -> None:
    assert Role.parse(text) == role
    assert str(role) == text


@pytest.mark.parametrize("text", ["admin", "officer", "officer:", "viewer:x", "officer:a:b:c"])
def test_bad_roles_are_refused(text: str) -> None:
    with pytest.raises(AuthConfigError):
        Role.parse(text)


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


def test_hash_command_reads_stdin_and_prints_a_verifiable_hash() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "zoneapp.web.auth", "hash"],
        input=KEY + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    line = out.stdout.strip()
    assert line.startswith("scrypt$") and KEY not in out.stdout + out.stderr
    keys = keys_with({"name": "cli", "hash": line, "roles": ["viewer"]})
    assert keys.authenticate(f"Bearer {KEY}").name == "cli"
