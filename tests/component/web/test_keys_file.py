"""A broken API keys file stops the worker at start-up, before it reaches a broker,
with the file's problem and never the hash (the composition root loads the keys)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from zoneapp.stack import free_port

from .conftest import POLICY


def test_a_broken_keys_file_stops_the_worker(tmp_path: Path) -> None:
    keys = tmp_path / "api-keys.yaml"
    keys.write_text(
        'keys:\n  - name: ops\n    hash: "sha256$not-hex-hash-4417"\n    roles: [viewer]\n'
    )
    env = {
        **os.environ,
        "ZONEAPP_ENV": "development",
        "ZONEAPP_KEYS": "memory://",
        "ZONEAPP_VAULT": "memory://",
        "ZONEAPP_POLICY": str(POLICY),
        "ZONEAPP_BROKER": "kafka://127.0.0.1:1",  # nothing listens: it must not get that far
        "ZONEAPP_DATADIR": str(tmp_path / "data"),
        "ZONEAPP_API_KEYS_FILE": str(keys),
    }
    faust = Path(sys.executable).with_name("faust")
    done = subprocess.run(
        [str(faust), "-A", "zoneapp", "worker", "-l", "info", "--web-port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-2000:]
    assert "zoneapp cannot start: API key 'ops': hash must be" in output
    assert "not-hex-hash-4417" not in output
