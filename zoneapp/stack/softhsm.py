"""Create throw-away SoftHSM2 tokens for tests and the embedded dev stack.

SoftHSM reads ``SOFTHSM2_CONF`` when the module is initialised (``pkcs11.lib(path)``
or ``C_Initialize``) and only sees tokens that existed then, and python-pkcs11 keeps
one loaded module per path per process. So: create the token first, then
:func:`activate_softhsm_env`, then build providers. Use one token per process (or
per test session) and distinct zone names per test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from zoneapp.settings import Secret

__all__ = [
    "SOFTHSM_MODULE_CANDIDATES",
    "activate_softhsm_env",
    "find_softhsm_module",
    "init_softhsm_token",
]

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


def find_softhsm_module() -> str | None:
    """Path of libsofthsm2 (``ZONEAPP_SOFTHSM_MODULE`` overrides), or None if not installed."""
    override = os.environ.get("ZONEAPP_SOFTHSM_MODULE")
    candidates = (override,) if override else SOFTHSM_MODULE_CANDIDATES
    for path in candidates:
        if path and Path(path).is_file():
            return path
    return None


def _text(value: Secret | str) -> str:
    return value.reveal().decode("utf-8") if isinstance(value, Secret) else value


def init_softhsm_token(
    tmpdir: str | os.PathLike[str],
    label: str,
    pin: Secret | str,
    so_pin: Secret | str,
    *,
    util: str = "softhsm2-util",
) -> dict[str, str]:
    """Write ``<tmpdir>/softhsm2.conf`` with a private token dir, initialise a token there.

    Returns the environment to set (``{"SOFTHSM2_CONF": ...}``) before the module is
    loaded. Errors never show the PINs (softhsm2-util receives them as arguments,
    which is acceptable for throw-away dev/test tokens only).
    """
    base = Path(tmpdir).resolve()
    tokendir = base / "tokens"
    tokendir.mkdir(parents=True, exist_ok=True)
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    env = {"SOFTHSM2_CONF": str(conf)}
    exe = shutil.which(util)
    if exe is None:
        raise RuntimeError(f"{util} not found on PATH (install the softhsm2 package)")
    cmd = [exe, "--init-token", "--free", "--label", label]
    cmd += ["--pin", _text(pin), "--so-pin", _text(so_pin)]
    result = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        # Not CalledProcessError: its message would include the command line, i.e. the PINs.
        detail = (result.stderr or result.stdout).strip()
        raise RuntimeError(
            f"softhsm2-util --init-token --label {label!r} failed ({result.returncode}): {detail}"
        )
    return env


def activate_softhsm_env(env: Mapping[str, str], module_path: str) -> None:
    """Export ``env`` and make an already-loaded SoftHSM module re-read it.

    If this process loaded the module before (another fixture, an earlier token),
    it is re-initialised so the new config and token become visible; that closes
    every open session, which providers survive by reconnecting.
    """
    os.environ.update(env)
    import pkcs11  # deferred: only the PKCS#11 users of this helper need python-pkcs11

    loaded = getattr(pkcs11, "_loaded", {})
    lib = loaded.get(module_path)
    if lib is not None and lib.initialized:
        lib.reinitialize()
