"""Create the SoftHSM2 token (if missing) and the per-zone keys: the hsm-init step of deploy/.

Reads what the worker reads: ``ZONEAPP_KEYS`` (``pkcs11://<module>?token=<label>``),
``ZONEAPP_PKCS11_PIN_FILE`` (or ``ZONEAPP_PKCS11_PIN``), ``ZONEAPP_POLICY`` and
``SOFTHSM2_CONF``. The security-officer PIN comes from the file named by
``--so-pin-file``. No PIN is ever put on a command line: the token is initialised
with PKCS#11 calls (``C_InitToken``, ``C_InitPIN``) instead of ``softhsm2-util``.

Idempotent: an existing token with the label is kept, and key provisioning
(``python -m zoneapp.stack.provision``, in a child process because a PKCS#11 module
reads its configuration once per process) only creates keys that are missing.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CK_ULONG = ctypes.c_ulong
CKF_RW_SESSION = 0x2
CKF_SERIAL_SESSION = 0x4
CKF_TOKEN_INITIALIZED = 0x400
CKU_SO = 0
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKR_NAMES = {
    0x3: "CKR_SLOT_ID_INVALID",
    0x6: "CKR_FUNCTION_FAILED",
    0x7: "CKR_ARGUMENTS_BAD",
    0xA0: "CKR_PIN_INCORRECT",
    0xA2: "CKR_PIN_LEN_RANGE",
    0xE0: "CKR_TOKEN_NOT_PRESENT",
    0xE2: "CKR_TOKEN_WRITE_PROTECTED",
    0x100: "CKR_USER_ALREADY_LOGGED_IN",
}


class CkVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class CkTokenInfo(ctypes.Structure):
    _fields_ = [
        ("label", ctypes.c_char * 32),
        ("manufacturerID", ctypes.c_char * 32),
        ("model", ctypes.c_char * 16),
        ("serialNumber", ctypes.c_char * 16),
        ("flags", CK_ULONG),
        ("ulMaxSessionCount", CK_ULONG),
        ("ulSessionCount", CK_ULONG),
        ("ulMaxRwSessionCount", CK_ULONG),
        ("ulRwSessionCount", CK_ULONG),
        ("ulMaxPinLen", CK_ULONG),
        ("ulMinPinLen", CK_ULONG),
        ("ulTotalPublicMemory", CK_ULONG),
        ("ulFreePublicMemory", CK_ULONG),
        ("ulTotalPrivateMemory", CK_ULONG),
        ("ulFreePrivateMemory", CK_ULONG),
        ("hardwareVersion", CkVersion),
        ("firmwareVersion", CkVersion),
        ("utcTime", ctypes.c_char * 16),
    ]


class HsmInitError(RuntimeError):
    """A PKCS#11 call failed; the message names the call and code, never a PIN."""


def parse_keys_url(url: str) -> tuple[str, str]:
    """``pkcs11:///path/module.so?token=LABEL`` → (module path, label)."""
    parts = urlsplit(url)
    labels = [t for t in parse_qs(parts.query).get("token", []) if t]
    if parts.scheme.lower() != "pkcs11" or not parts.path.startswith("/") or len(labels) != 1:
        raise HsmInitError("ZONEAPP_KEYS must be pkcs11:///path/to/module.so?token=LABEL")
    return parts.path, labels[0]


def read_secret_file(path: str) -> bytes:
    data = Path(path).read_bytes().rstrip(b"\r\n")
    if not data:
        raise HsmInitError(f"{path} is empty")
    return data


class Pkcs11Module:
    """The few PKCS#11 calls needed to initialise a token, through ctypes."""

    def __init__(self, path: str) -> None:
        self._lib = ctypes.CDLL(path)

    def _call(self, name: str, *args: object) -> None:
        rv = int(getattr(self._lib, name)(*args))
        if rv != 0:
            raise HsmInitError(f"{name} failed: {CKR_NAMES.get(rv, 'CKR')} (0x{rv:x})")

    def initialize(self) -> None:
        rv = int(self._lib.C_Initialize(None))
        if rv not in (0, CKR_CRYPTOKI_ALREADY_INITIALIZED):
            raise HsmInitError(f"C_Initialize failed (0x{rv:x})")

    def finalize(self) -> None:
        self._lib.C_Finalize(None)

    def tokens(self) -> list[tuple[int, str, bool]]:
        """(slot id, label, initialized) of every slot with a token."""
        count = CK_ULONG(0)
        self._call("C_GetSlotList", ctypes.c_ubyte(1), None, ctypes.byref(count))
        slots = (CK_ULONG * max(count.value, 1))()
        self._call("C_GetSlotList", ctypes.c_ubyte(1), slots, ctypes.byref(count))
        found: list[tuple[int, str, bool]] = []
        for slot in slots[: count.value]:
            info = CkTokenInfo()
            self._call("C_GetTokenInfo", CK_ULONG(slot), ctypes.byref(info))
            label = bytes(info.label).decode("utf-8", "replace").rstrip(" \x00")
            found.append((int(slot), label, bool(info.flags & CKF_TOKEN_INITIALIZED)))
        return found

    def init_token(self, slot: int, label: str, so_pin: bytes, user_pin: bytes) -> None:
        """C_InitToken, then C_InitPIN as the security officer."""
        padded = label.encode("utf-8").ljust(32, b" ")
        if len(padded) > 32:
            raise HsmInitError("token label is longer than 32 bytes")
        self._call(
            "C_InitToken", CK_ULONG(slot), so_pin, CK_ULONG(len(so_pin)), ctypes.c_char_p(padded)
        )
        session = CK_ULONG(0)
        flags = CK_ULONG(CKF_SERIAL_SESSION | CKF_RW_SESSION)
        self._call("C_OpenSession", CK_ULONG(slot), flags, None, None, ctypes.byref(session))
        try:
            self._call("C_Login", session, CK_ULONG(CKU_SO), so_pin, CK_ULONG(len(so_pin)))
            self._call("C_InitPIN", session, user_pin, CK_ULONG(len(user_pin)))
            self._call("C_Logout", session)
        finally:
            self._lib.C_CloseSession(session)


def ensure_token(module_path: str, label: str, so_pin: bytes, user_pin: bytes) -> bool:
    """Initialise a free slot's token as ``label`` unless one exists; True if it was created."""
    module = Pkcs11Module(module_path)
    module.initialize()
    try:
        tokens = module.tokens()
        if any(found == label and initialized for _, found, initialized in tokens):
            return False
        free = [slot for slot, _, initialized in tokens if not initialized]
        if not free:
            raise HsmInitError(f"no free slot to initialise token {label!r}")
        module.init_token(free[0], label, so_pin, user_pin)
        return True
    finally:
        module.finalize()


def provision(env: dict[str, str]) -> None:
    """Per-zone KEK + HMAC keys of the policy, in a child process (see the module docstring)."""
    result = subprocess.run(
        [sys.executable, "-m", "zoneapp.stack.provision"], env=env, check=False, text=True
    )
    if result.returncode != 0:
        raise HsmInitError(f"key provisioning failed (exit {result.returncode})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="create the token and per-zone keys")
    parser.add_argument("--so-pin-file", required=True, help="file holding the SO PIN")
    args = parser.parse_args(argv)

    from zoneapp.settings import Settings

    settings = Settings.from_env()
    if settings.pkcs11_pin is None:
        sys.exit("hsm-init: set ZONEAPP_PKCS11_PIN_FILE")
    try:
        module_path, label = parse_keys_url(settings.keys_url)
        created = ensure_token(
            module_path, label, read_secret_file(args.so_pin_file), settings.pkcs11_pin.reveal()
        )
        print(f"hsm-init: token {label!r} {'created' if created else 'already there'}", flush=True)
        env = dict(os.environ)
        pin_file = env.get("ZONEAPP_PKCS11_PIN_FILE")
        if not pin_file:
            sys.exit("hsm-init: the provisioning step needs ZONEAPP_PKCS11_PIN_FILE")
        env.setdefault("ZONEAPP_POLICY", settings.policy_path)
        env.setdefault("ZONEAPP_KEYS", settings.keys_url)
        provision(env)
    except (HsmInitError, OSError) as exc:
        sys.exit(f"hsm-init: {exc}")


if __name__ == "__main__":
    main()
