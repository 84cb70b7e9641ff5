"""Child processes the stack owns: own process group, log file, SIGTERM-then-SIGKILL stop.

Each child runs in a new session so that a Ctrl-C on the terminal reaches only the
parent, which then stops the children in a known order (worker before broker), and
so that ``stop`` can signal everything a child spawned (``killpg``).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "ManagedProcess",
    "StackError",
    "free_port",
    "port_is_free",
    "tail",
    "wait_for_tcp",
]


class StackError(RuntimeError):
    """A stack component failed to start or became unusable; the message names it."""


_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=256)


def free_port() -> int:
    """An unused loopback TCP port (bind to port 0, read it back, release it).

    The kernel may give the same port to two binds in a row once the first socket is
    closed, so two calls made before either port is bound (a broker's client and
    controller listeners, say) could collide. A port this process handed out recently
    is therefore never handed out again.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.append(port)
            return port


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages (empty if unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One child process with its output captured in ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env)
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        # The env may hold file paths to secrets but never the secrets; still, keep it out.
        return f"ManagedProcess({self.name!r}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Spawn the child in its own session, stdout+stderr appended to the log file."""
        if self._proc is not None:
            raise StackError(f"{self.name}: already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env,
                    cwd=self._cwd,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise StackError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc

    def poll(self) -> int | None:
        """Exit code, or None while running (or never started)."""
        return self._proc.poll() if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        """Raise StackError with the log tail if the child has exited."""
        code = self.poll()
        if code is not None:
            raise StackError(
                f"{self.name} exited with code {code}; last lines of {self.log_path}:\n"
                f"{tail(self.log_path)}"
            )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the whole process group, SIGKILL it after ``timeout``; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        pgid = proc.pid  # start_new_session: the child leads its own group
        if proc.poll() is None:
            _killpg(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _killpg(pgid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Grandchildren that ignored SIGTERM (or outlived the leader) still go.
        _killpg(pgid, signal.SIGKILL)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the process group now (second Ctrl-C); ``stop`` still reaps it."""
        if self._proc is not None:
            _killpg(self._proc.pid, signal.SIGKILL)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_for_tcp(
    host: str, port: int, *, timeout: float, proc: ManagedProcess | None = None
) -> None:
    """Wait until host:port accepts a connection; fail early if ``proc`` dies meanwhile."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check_alive()
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    name = proc.name if proc is not None else f"{host}:{port}"
    detail = f"; last lines of {proc.log_path}:\n{tail(proc.log_path)}" if proc else ""
    raise StackError(
        f"{name}: not accepting connections on {host}:{port} after {timeout:.0f}s ({last}){detail}"
    )
