"""Image entrypoint: put the Redis password from a secret file into ``ZONEAPP_VAULT``, then exec.

zoneapp reads the vault as one URL (``ZONEAPP_VAULT``) with no ``_FILE`` form, and a
password written into the compose file would be readable by anyone who can read
the file or ``docker inspect``. So the URL stays password-free in configuration
(``redis://redis:6379/0`` or ``redis://zoneapp@redis:6379/0`` for an ACL user) and
``ZONEAPP_VAULT_PASSWORD_FILE`` names the secret; this script inserts the
URL-encoded password and removes the ``_FILE`` variable before exec'ing the command.
Without ``ZONEAPP_VAULT_PASSWORD_FILE`` it changes nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

#: The one variable this entrypoint reads (the app reads every other ZONEAPP_* one).
VAULT_PASSWORD_FILE = "ZONEAPP_VAULT_PASSWORD_FILE"
VAULT = "ZONEAPP_VAULT"


class EntrypointError(ValueError):
    """Bad configuration; the message never contains the password."""


def vault_url_with_password(url: str, password: str) -> str:
    """``redis://[user@]host:port/db`` with the password set (user ``default`` if none)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise EntrypointError(f"{VAULT} must be redis://[user@]host[:port]/db to take a password")
    if parts.password is not None:
        raise EntrypointError(f"{VAULT} already has a password; remove it or {VAULT_PASSWORD_FILE}")
    user = parts.username or "default"
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def apply_vault_password(env: MutableMapping[str, str]) -> None:
    """Rewrite ``env`` in place (see the module docstring)."""
    path = env.pop(VAULT_PASSWORD_FILE, "")
    if not path:
        return
    try:
        password = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise EntrypointError(
            f"{VAULT_PASSWORD_FILE}: cannot read {path}: {exc.strerror}"
        ) from None
    if not password:
        raise EntrypointError(f"{VAULT_PASSWORD_FILE}: {path} is empty")
    from zoneapp.settings import Settings

    env[VAULT] = vault_url_with_password(env.get(VAULT) or Settings().vault_url, password)


def main(argv: Sequence[str] | None = None) -> None:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        sys.exit("usage: entrypoint.py COMMAND [ARG...]")
    try:
        apply_vault_password(os.environ)
    except EntrypointError as exc:
        sys.exit(f"entrypoint: {exc}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
