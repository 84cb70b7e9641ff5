"""Demo API keys: fresh, hashed on disk, with the three demo roles, never in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoneapp.stack.demo_keys import mint_demo_keys
from zoneapp.web.auth import ApiKeys, Unauthorized


def test_minted_keys_authenticate_with_their_roles(tmp_path: Path) -> None:
    keys = mint_demo_keys(tmp_path / "demo")
    configured = ApiKeys.load(keys.path)
    viewer = configured.authenticate(f"Bearer {keys.viewer}")
    analyst = configured.authenticate(f"Bearer {keys.analyst}")
    officer = configured.authenticate(f"Bearer {keys.officer}")
    assert (viewer.name, analyst.name, officer.name) == (
        "demo-viewer",
        "demo-analyst",
        "demo-officer",
    )
    assert viewer.may_view_stats() and not viewer.may_view_violations()
    assert analyst.may_view_violations() and not analyst.officer_zones()
    assert officer.may_resolve("restricted", "acme-retail") and not officer.may_view_stats()
    assert not officer.may_resolve("confidential")
    with pytest.raises(Unauthorized):
        configured.authenticate("Bearer zk_" + "x" * 43)


def test_only_hashes_reach_the_disk_and_no_repr(tmp_path: Path) -> None:
    keys = mint_demo_keys(tmp_path / "demo")
    text = keys.path.read_text()
    assert keys.path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "demo").stat().st_mode & 0o777 == 0o700
    assert text.count("scrypt$") == 3
    assert "Never point a deployment at this file" in text
    for key in keys.all():
        assert key.startswith("zk_") and len(key) == 46  # 256 random bits
        assert key not in text and key not in repr(keys)


def test_every_run_mints_new_keys_and_never_overwrites(tmp_path: Path) -> None:
    first = mint_demo_keys(tmp_path / "one")
    second = mint_demo_keys(tmp_path / "two")
    assert set(first.all()).isdisjoint(second.all())
    assert len(set(first.all())) == 3
    with pytest.raises(FileExistsError):
        mint_demo_keys(tmp_path / "one")
    # The earlier run's keys do not open the later run's file.
    with pytest.raises(Unauthorized):
        ApiKeys.load(second.path).authenticate(f"Bearer {first.analyst}")
