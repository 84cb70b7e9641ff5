"""API keys for the demo on the embedded stack (``python -m zoneapp.stack run``) only.

Why they exist: without a key the zone map and every JSON view answer 401, so a
newcomer would see nothing of what the project is about. Why they cannot reach a
real deployment:

* They are minted fresh (256 random bits each) on every ``run``; the plaintext
  lives only in the supervisor's memory and is printed once, in the banner.
* Only their scrypt hashes are written, to ``<workdir>/demo/api-keys.yaml``
  (mode 0600 in the 0700 work directory). The stack deletes that directory when
  it stops, and again when it next starts in the same work directory (after a
  supervisor that was killed).
* Only ``run`` points a worker at the file (``ZONEAPP_API_KEYS_FILE`` in that
  worker's environment). ``EmbeddedStack.env()`` - what ``stack up`` prints and
  tests and the bench use - never names it, and a worker has no default keys file,
  so nothing finds it by convention.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from zoneapp.web.auth import ApiKeys, hash_key, new_key

__all__ = ["DEMO_ROLES", "DemoKeys", "mint_demo_keys"]

#: name -> roles of the minted keys. The officer may resolve the restricted zone's
#: tokens (the demo tokenizes at the restricted -> confidential boundaries).
DEMO_ROLES: dict[str, tuple[str, ...]] = {
    "demo-viewer": ("viewer",),
    "demo-analyst": ("analyst",),
    "demo-officer": ("officer:restricted",),
}
FILE_HEADER = (
    "# Demo API keys of `python -m zoneapp.stack run`, minted for one run of the embedded\n"
    "# stack and deleted when it stops. Never point a deployment at this file.\n"
)


@dataclass(frozen=True)
class DemoKeys:
    """The plaintext keys of one run (never in a repr) and the hashed file they are in."""

    path: Path
    viewer: str = field(repr=False)
    analyst: str = field(repr=False)
    officer: str = field(repr=False)

    def all(self) -> tuple[str, ...]:
        return (self.viewer, self.analyst, self.officer)


def mint_demo_keys(directory: Path) -> DemoKeys:
    """Create ``directory/api-keys.yaml`` with the hashes of three new keys; return them.

    The file is created exclusively (an existing one is an error: the stack clears the
    directory first), and read back through the worker's own loader so a bad file
    fails here rather than in the worker.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = {name: new_key() for name in DEMO_ROLES}
    document = {
        "keys": [
            {"name": name, "hash": hash_key(keys[name]), "roles": list(roles)}
            for name, roles in DEMO_ROLES.items()
        ]
    }
    path = directory / "api-keys.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(FILE_HEADER)
        yaml.safe_dump(document, fh, sort_keys=False)
    ApiKeys.load(path)
    return DemoKeys(path, keys["demo-viewer"], keys["demo-analyst"], keys["demo-officer"])
