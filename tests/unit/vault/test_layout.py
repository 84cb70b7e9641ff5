"""The vault's Redis layout is one source of truth: the shipped ACL and the README follow it,
and every key the vault builds has a hash tag (Redis Cluster)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.crc import key_slot

from zoneapp.vault import layout

ROOT = Path(__file__).resolve().parents[3]
START_SH = ROOT / "deploy" / "redis" / "start.sh"
README = ROOT / "README.md"


def test_start_sh_carries_the_generated_acl() -> None:
    text = START_SH.read_text(encoding="utf-8")
    [line] = re.findall(r"^ZONEAPP_VAULT_ACL='([^']*)'$", text, re.M)
    assert line == layout.acl_rules()
    assert '"$ZONEAPP_VAULT_ACL"' in text  # and it is what the user line is built from


def test_readme_recommends_the_generated_acl() -> None:
    assert f"ACL SETUSER zoneapp on >password {layout.acl_rules()}" in README.read_text()


def test_acl_grants_only_the_vaults_keys_and_commands() -> None:
    rules = layout.acl_rules().split()
    assert rules[0] == "resetkeys" and "-@all" in rules and "resetchannels" in rules
    keys = {r[1:] for r in rules if r.startswith("~")}
    commands = {r[1:] for r in rules if r.startswith("+")}
    assert keys == set(layout.KEY_PATTERNS) and commands == set(layout.COMMANDS)
    assert not any(
        "@" in c or c in ("keys", "scan", "flushall", "config", "eval") for c in commands
    )


@pytest.mark.parametrize(
    "key",
    [
        layout.token_key("acme", "tok_abc"),
        layout.subject_set_key("acme", "subj"),
        layout.subject_secret_key("acme", "subj"),
        layout.index_key("tok_abc"),
        layout.token_key("", "tok_abc"),
    ],
)
def test_every_key_matches_an_acl_pattern_and_has_a_hash_tag(key: str) -> None:
    assert any(re.fullmatch(p.replace("*", ".*"), key) for p in layout.KEY_PATTERNS)
    assert re.search(r"\{[^}]+\}", key), key


def test_a_tenants_keys_share_one_slot() -> None:
    slots = {
        key_slot(k.encode())
        for k in (
            layout.token_key("acme", "tok_a"),
            layout.token_key("acme", "4111 2222 3333 1111"),
            layout.subject_set_key("acme", "s"),
            layout.subject_secret_key("acme", "s"),
        )
    }
    assert len(slots) == 1
    assert layout.token_key("", "t") == "zoneapp:tok:{_}:t"
