"""Key management across real OS processes sharing one SoftHSM2 token.

Each "worker" is a separate Python process (as in production), configured only
through the variables a worker reads (ZONEAPP_KEYS, ZONEAPP_PKCS11_PIN_FILE,
SOFTHSM2_CONF). The test process itself never loads the PKCS#11 module, so it
does not pin SOFTHSM2_CONF for other integration tests in the same session.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from zoneapp.stack.softhsm import find_softhsm_module, init_softhsm_token

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TIMEOUT = 60

# The worker program: one JSON command in argv[1], one JSON result on stdout.
CHILD = r"""
import asyncio, hashlib, json, sys
from zoneapp.keys import Aad, KeyCalls, KeyProviderError, KeyRing, Secret
from zoneapp.keys import build_key_admin, build_key_provider
from zoneapp.keys import parse_ciphertext_header as header
AAD = Aad.field("acme", "t", "f")

async def main(cmd):
    pin = Secret.from_env_or_file("ZONEAPP_PKCS11_PIN", "ZONEAPP_PKCS11_PIN_FILE")
    calls = KeyCalls()
    provider = build_key_provider(cmd["url"], pin, calls=calls)
    admin = build_key_admin(cmd["url"], pin)
    out = {}
    try:
        if cmd.get("provision"):
            await admin.provision(cmd["provision"])
        if cmd.get("rotate"):
            out["rotated"] = await admin.rotate_kek(cmd["rotate"])
        if cmd.get("zones"):
            await provider.open(cmd["zones"])
            ring = KeyRing(provider, cmd["zones"], version_check_interval=0)
            for zone in cmd["zones"]:
                ring.require_hmac(zone, "email")
            await ring.prepare()
            zones = cmd["zones"]
            out["hmac"] = {z: hashlib.sha256(ring.hmac_key(z, "email")).hexdigest() for z in zones}
            out["ct"] = {z: ring.encrypt(z, b"hello " + z.encode(), AAD) for z in zones}
            out["versions"] = {z: header(c).kek_version for z, c in out["ct"].items()}
            out["decrypted"] = {}
            for ct in cmd.get("decrypt", []):
                try:
                    out["decrypted"][ct] = (await ring.decrypt(ct, AAD)).decode()
                except KeyProviderError as exc:
                    out["decrypted"][ct] = type(exc).__name__
            out["hsm_calls"] = calls.total
    except KeyProviderError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await admin.close()
        await provider.close()
    print(json.dumps(out))

asyncio.run(main(json.loads(sys.argv[1])))
"""


class Token:
    def __init__(self, tmp: Path) -> None:
        module = find_softhsm_module()
        if module is None:
            pytest.fail(
                "SoftHSM2 is not installed: `sudo apt-get install -y softhsm2`", pytrace=False
            )
        self.label = f"zoneapp-mp-{uuid.uuid4().hex[:6]}"
        self.pin = secrets.token_hex(12)
        self.pin_file = tmp / "pin"
        self.pin_file.write_text(self.pin + "\n", encoding="utf-8")
        self.pin_file.chmod(0o600)
        self.env = init_softhsm_token(tmp / "softhsm", self.label, self.pin, secrets.token_hex(12))
        self.url = f"pkcs11://{module}?token={self.label}"

    def run(self, cmd: dict[str, Any], *, pin_file: Path | None = None) -> subprocess.Popen[str]:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ZONEAPP_")},
            **self.env,
            "PYTHONPATH": str(REPO),
            "ZONEAPP_PKCS11_PIN_FILE": str(pin_file or self.pin_file),
        }
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps({"url": self.url, **cmd})],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def result(proc: subprocess.Popen[str]) -> dict[str, Any]:
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        return dict(json.loads(out.strip().splitlines()[-1]))

    def call(self, cmd: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self.result(self.run(cmd, **kwargs))


def test_workers_in_separate_processes(tmp_path: Path) -> None:
    token = Token(tmp_path)
    conf, restr = "confidential", "restricted"

    # Worker A (trusted with both zones) provisions, encrypts and derives.
    a = token.call({"provision": [conf, restr], "zones": [conf, restr]})
    assert a["versions"] == {conf: 1, restr: 1}
    # Key operations sent by the worker's stack, per zone: a version lookup, a wrap, an HMAC
    # derivation (admin calls are not counted). Nothing per record.
    assert a["hsm_calls"] == 2 * (1 + 1 + 1)

    # Three confidential-only workers at once: same HMAC keys, can read confidential,
    # cannot read restricted.
    procs = [
        token.run({"zones": [conf], "decrypt": [a["ct"][conf], a["ct"][restr]]}) for _ in range(3)
    ]
    for proc in procs:
        b = token.result(proc)
        assert "error" not in b, b["error"]  # a failed worker says why
        assert b["hmac"][conf] == a["hmac"][conf]
        assert b["decrypted"][a["ct"][conf]] == "hello confidential"
        assert b["decrypted"][a["ct"][restr]] == "ZoneNotPermittedError"

    # An admin process rotates; the next worker encrypts under v2 and still reads v1 data.
    assert token.call({"rotate": conf})["rotated"] == 2
    c = token.call({"zones": [conf], "decrypt": [a["ct"][conf]]})
    assert c["versions"] == {conf: 2}
    assert c["decrypted"][a["ct"][conf]] == "hello confidential"
    assert c["hmac"][conf] == a["hmac"][conf]  # HMAC keys do not rotate with the KEK
    # ...and v1-era workers read v2 data.
    d = token.call({"zones": [conf, restr], "decrypt": [c["ct"][conf]]})
    assert d["decrypted"][c["ct"][conf]] == "hello confidential"


def test_wrong_pin_in_another_process(tmp_path: Path) -> None:
    token = Token(tmp_path)
    token.call({"provision": ["internal"]})
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("not-the-pin-31337\n", encoding="utf-8")
    result = token.call({"zones": ["internal"]}, pin_file=wrong)
    assert result["error"].startswith("KeyLoginError: login to token")
    assert "PinIncorrect" in result["error"]
    assert "31337" not in result["error"] and token.pin not in result["error"]
