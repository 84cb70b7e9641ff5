"""The layers of ARCHITECTURE.md hold: the import-linter contracts pass, nothing below the
Faust side imports agents/ or tables/, and ``check-policy`` needs no HSM binding."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures import POLICY

ROOT = Path(__file__).resolve().parents[3]
FAUST_SIDE = {"application.py"}  # the only module that may import zoneapp.agents / zoneapp.tables


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # The summary reads "Contracts: N kept, 0 broken." ("broken" is always in it).
    assert done.stdout.lower().split("contracts:")[-1].strip().endswith(" 0 broken.")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_only_the_faust_side_imports_agents_and_tables() -> None:
    offenders = []
    for path in sorted((ROOT / "zoneapp").rglob("*.py")):
        top = path.relative_to(ROOT / "zoneapp").parts[0]
        if top in FAUST_SIDE:
            continue
        bad = {
            name
            for name in _imports(path)
            if name.startswith(("zoneapp.agents", "zoneapp.tables", "agents", "tables"))
        }
        if bad:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert not offenders


def test_check_policy_runs_without_python_pkcs11(tmp_path: Path) -> None:
    """An operator checks a policy on a laptop with no HSM binding installed."""
    blocker = tmp_path / "pkcs11"
    blocker.mkdir()
    (blocker / "__init__.py").write_text('raise ImportError("no python-pkcs11 here")\n')
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "ZONEAPP_KEYS": "pkcs11:///usr/lib/softhsm/libsofthsm2.so?token=zoneapp",
        "ZONEAPP_PKCS11_PIN": "1234",
    }
    policy = POLICY
    faust = Path(sys.executable).with_name("faust")
    done = subprocess.run(
        [str(faust), "-A", "zoneapp", "check-policy", str(policy)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert ": OK (version" in done.stdout
    # The blocker really blocks: importing the binding fails under the same path.
    probe = subprocess.run(
        [sys.executable, "-c", "import pkcs11"], env=env, capture_output=True, timeout=60
    )
    assert probe.returncode != 0
