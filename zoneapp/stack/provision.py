"""Create the per-zone keys of a policy in the key store: ``python -m zoneapp.stack.provision``.

The stack runs this in a child process on purpose: a PKCS#11 library reads
``SOFTHSM2_CONF`` once per process (at C_Initialize), so provisioning in the
caller would pin that process (a test session, the ``run`` supervisor) to one
token directory. Configuration comes from the same variables the worker reads;
the PIN only ever travels as a file path.
"""

from __future__ import annotations

import asyncio
import os
import sys

__all__ = ["main", "provision_keys"]


async def provision_keys(keys_url: str, pin_file: str | None, policy_path: str) -> list[str]:
    """Provision v1 KEK + HMAC key for every zone of the policy (idempotent); returns the zones."""
    from zoneapp.keys import build_key_admin
    from zoneapp.policy import load_policy
    from zoneapp.settings import Secret

    policy = load_policy(policy_path)
    zones = sorted(policy.zones)
    pin: Secret | None = None
    if pin_file:
        with open(pin_file, "rb") as fh:
            pin = Secret(fh.read().rstrip(b"\r\n"))
    admin = build_key_admin(keys_url, pin)
    try:
        await admin.provision(zones)
    finally:
        await admin.close()
    return zones


def main() -> None:
    keys_url = os.environ.get("ZONEAPP_KEYS")
    policy_path = os.environ.get("ZONEAPP_POLICY")
    if not keys_url or not policy_path:
        sys.exit("provision: ZONEAPP_KEYS and ZONEAPP_POLICY must be set")
    zones = asyncio.run(
        provision_keys(keys_url, os.environ.get("ZONEAPP_PKCS11_PIN_FILE"), policy_path)
    )
    print(f"provisioned keys for zones: {', '.join(zones)}")


if __name__ == "__main__":
    main()
