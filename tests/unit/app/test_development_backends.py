"""memory:// keys and vault: refused unless ZONEAPP_ENV=development, and loud when allowed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import POLICY as UNIT_POLICY
from zoneapp.runtime import Runtime
from zoneapp.settings import Settings, SettingsError
from zoneapp.stack import free_port
from zoneapp.vault import CachingTokenVault, MemoryTokenVault, build_vault

POLICY = str(UNIT_POLICY)


def test_environment_defaults_to_production() -> None:
    assert Settings.from_env({}).environment == "production"
    assert not Settings.from_env({}).development
    assert Settings.from_env({"ZONEAPP_ENV": "Development"}).development
    with pytest.raises(SettingsError, match="ZONEAPP_ENV"):
        Settings.from_env({"ZONEAPP_ENV": "dev"})


def test_memory_vault_needs_development(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="ZONEAPP_ENV=development"):
        build_vault("memory://")
    with caplog.at_level(logging.WARNING):
        vault = build_vault("memory://", development=True)
    assert isinstance(vault, MemoryTokenVault)
    assert "DEVELOPMENT ONLY" in caplog.text and "ZONEAPP_VAULT" in caplog.text


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ZONEAPP_KEYS": "memory://"}, "ZONEAPP_KEYS"),
        ({"ZONEAPP_VAULT": "memory://"}, "ZONEAPP_VAULT"),
        ({"ZONEAPP_KEYS": "memory://shared", "ZONEAPP_ENV": "production"}, "ZONEAPP_KEYS"),
    ],
)
def test_runtime_refuses_memory_backends_outside_development(
    env: dict[str, str], variable: str
) -> None:
    runtime = Runtime.from_settings(Settings.from_env({"ZONEAPP_POLICY": POLICY, **env}))
    assert runtime.policy is None
    assert runtime.policy_error is not None
    assert variable in runtime.policy_error and "ZONEAPP_ENV=development" in runtime.policy_error


def test_runtime_allows_memory_backends_in_development() -> None:
    settings = Settings.from_env(
        {
            "ZONEAPP_POLICY": POLICY,
            "ZONEAPP_KEYS": "memory://",
            "ZONEAPP_VAULT": "memory://",
            "ZONEAPP_ENV": "development",
        }
    )
    runtime = Runtime.from_settings(settings)
    assert runtime.policy is not None and runtime.policy_error is None
    assert isinstance(runtime.vault, CachingTokenVault)
    assert isinstance(runtime.vault.inner, MemoryTokenVault)


def test_the_worker_refuses_to_start_on_memory_keys(tmp_path: Path) -> None:
    """``faust -A zoneapp worker`` with memory:// keys and no ZONEAPP_ENV exits 2 at start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONEAPP_", "OTEL_"))}
    env.update(
        {
            "ZONEAPP_KEYS": "memory://",
            "ZONEAPP_VAULT": "memory://",
            "ZONEAPP_POLICY": POLICY,
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
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-2000:]
    assert "ZONEAPP_ENV=development" in output


def test_commands_refuse_memory_keys_with_the_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONEAPP_", "OTEL_"))}
    env.update({"ZONEAPP_KEYS": "memory://", "ZONEAPP_POLICY": POLICY})
    faust = Path(sys.executable).parent / "faust"
    result = subprocess.run(
        [str(faust), "-A", "zoneapp", "rotate-key", "restricted"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "ZONEAPP_ENV=development" in result.stderr and "Traceback" not in result.stderr
