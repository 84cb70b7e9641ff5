"""A ``faust -A zoneapp worker`` child process on a stack (for ``run``, tests and the bench)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from zoneapp.stack.process import ManagedProcess, StackError, tail

__all__ = ["READY_MARKER", "WorkerProcess", "faust_command"]

#: What Faust logs (at info) once the worker has started all its services.
READY_MARKER = "[^Worker]: Ready"


def faust_command() -> list[str]:
    """The ``faust`` next to this interpreter (so the venv's Faust runs, whatever PATH says)."""
    beside = Path(sys.executable).parent / "faust"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("faust")
    if found:
        return [found]
    return [sys.executable, "-m", "faust"]


class WorkerProcess(ManagedProcess):
    """A Faust worker whose output goes to ``log_path``; ``wait_ready`` watches for Ready."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        log_path: Path,
        web_port: int,
        app: str = "zoneapp",
        loglevel: str = "info",
        extra_args: Sequence[str] = (),
        cwd: Path | None = None,
        name: str = "worker",
        unset: Sequence[str] = (),
    ) -> None:
        argv = [
            *faust_command(),
            "-A", app,
            "worker",
            "-l", loglevel,
            "--web-port", str(web_port),
            *extra_args,
        ]  # fmt: skip
        full_env = {**os.environ, **env, "ZONEAPP_WEB_PORT": str(web_port)}
        for name_ in unset:  # inherited variables that would override ``env``
            full_env.pop(name_, None)
        if "ZONEAPP_PKCS11_PIN_FILE" in env and "ZONEAPP_PKCS11_PIN" not in env:
            # A PIN inherited from the caller's shell would win over the stack's PIN file.
            full_env.pop("ZONEAPP_PKCS11_PIN", None)
        if "ZONEAPP_CLUSTER_SECRET_FILE" in env and "ZONEAPP_CLUSTER_SECRET" not in env:
            full_env.pop("ZONEAPP_CLUSTER_SECRET", None)
        # Faust buffers nothing itself, but Python would when stderr is a file.
        full_env["PYTHONUNBUFFERED"] = "1"
        super().__init__(name, argv, log_path=log_path, env=full_env, cwd=cwd)
        self.web_port = web_port
        self._ready = False
        self._scanned = 0  # bytes of the log already searched for the marker

    def __repr__(self) -> str:
        return f"WorkerProcess(pid={self.pid}, web_port={self.web_port})"

    def is_ready(self) -> bool:
        """True once the log shows Ready (reads only what was appended since the last call)."""
        if self._ready:
            return True
        marker = READY_MARKER.encode()
        # Re-read len(marker) - 1 bytes so a marker split across two calls is still seen.
        start = max(0, self._scanned - len(marker) + 1)
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(start)
                chunk = fh.read()
        except OSError:
            return False
        self._scanned = start + len(chunk)
        self._ready = marker in chunk
        return self._ready

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the log shows Ready; StackError with the log tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_ready():
                return
            self.check_alive()
            time.sleep(0.2)
        raise StackError(
            f"{self.name}: not ready after {timeout:.0f}s; last lines of {self.log_path}:\n"
            f"{tail(self.log_path, 40)}"
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (Faust shuts down gracefully), SIGKILL after ``timeout`` seconds."""
        return super().stop(timeout=timeout)
