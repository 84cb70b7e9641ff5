"""The worker fails closed on a policy the flow proof refuses: each boundary passes the
loader, the two together leak, and the worker does not start (exit 2, the proof's lines)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures import POLICY
from zoneapp.runtime import Runtime
from zoneapp.settings import Settings
from zoneapp.stack import free_port

# The review's two-hop repro: a derive keeps the SSN into confidential, the next boundary
# keeps the derived field into public.
LEAKY = """\
version: "leaky-1"
zones:
  - {name: restricted, level: restricted}
  - {name: confidential, level: confidential}
  - {name: public, level: public}
boundaries:
  - name: a
    source: restricted.hr
    destination: confidential.hr
    fields:
      emp.ssn: {transform: suppress, class: confidential}
    derive:
      ssn_copy: {from: emp.ssn, transform: keep, class: confidential}
  - name: b
    source: confidential.hr
    destination: public.hr
    fields:
      ssn_copy: {transform: keep, class: public}
"""

DEV = {"ZONEAPP_KEYS": "memory://", "ZONEAPP_VAULT": "memory://", "ZONEAPP_ENV": "development"}


def test_the_runtime_refuses_a_policy_the_proof_refuses(tmp_path: Path) -> None:
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text(LEAKY)
    runtime = Runtime.from_settings(Settings.from_env({"ZONEAPP_POLICY": str(leaky), **DEV}))
    assert runtime.policy is None and runtime.boundaries == []
    error = runtime.policy_error or ""
    assert error.startswith(f"{leaky}: the flow proof refuses the policy:\n  - leak on path")
    assert "boundary 'b'" in error and "field ssn_copy arrives as confidential" in error
    assert "check-policy --explain" in error
    # The proven fixture policy starts.
    fine = Runtime.from_settings(Settings.from_env({"ZONEAPP_POLICY": str(POLICY), **DEV}))
    assert fine.policy is not None and fine.policy_error is None


def test_the_worker_does_not_start_on_a_leaky_policy(tmp_path: Path) -> None:
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text(LEAKY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONEAPP_", "OTEL_"))}
    env.update(
        {
            **DEV,
            "ZONEAPP_POLICY": str(leaky),
            "ZONEAPP_DATADIR": str(tmp_path / "data"),
            "ZONEAPP_BROKER": "kafka://127.0.0.1:9",
        }
    )
    faust = Path(sys.executable).parent / "faust"
    result = subprocess.run(
        [str(faust), "-A", "zoneapp", "worker", "-l", "info", "--web-port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-2000:]
    assert "zoneapp cannot start: " in output and "the flow proof refuses the policy" in output
    assert "field ssn_copy arrives as confidential" in output
