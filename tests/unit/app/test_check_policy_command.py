"""`faust -A zoneapp check-policy` as a user runs it: no broker needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures import POLICY

REPO = Path(__file__).resolve().parents[3]
FAUST = Path(sys.executable).parent / "faust"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAUST), "-A", "zoneapp", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_the_shipped_example_policy_is_valid() -> None:
    """The policy `make run` and the deploy files use passes the operator's check."""
    out = run("check-policy", "deploy/policies/ecommerce.yaml")
    assert out.returncode == 0, out.stderr
    assert "OK (version 2026.11.1" in out.stdout and "payments-to-confidential" in out.stdout


def test_bad_policy_names_file_line_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        POLICY.read_text().replace(
            "transform: tokenize, class: restricted, format: card", "transform: tokenise"
        )
    )
    out = run("check-policy", str(bad))
    assert out.returncode == 1
    assert str(bad) in out.stderr and "unknown transform 'tokenise'" in out.stderr
    assert "boundaries[0].fields.card_number" in out.stderr and "line " in out.stderr


def test_worker_refuses_a_bad_policy_before_connecting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nzones: []\n")
    out = run(
        "worker",
        env={
            "ZONEAPP_POLICY": str(bad),
            "ZONEAPP_BROKER": "kafka://127.0.0.1:1",
            "ZONEAPP_DATADIR": str(tmp_path / "data"),
        },
    )
    assert out.returncode == 2
    text = out.stdout + out.stderr
    assert "zoneapp cannot start: invalid zone policy" in text and str(bad) in text
    assert "Unable connect" not in text
