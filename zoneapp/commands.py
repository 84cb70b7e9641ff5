"""Command-line tools on the app: ``faust -A zoneapp check-policy FILE``."""

from __future__ import annotations

import sys
from typing import Any

import faust
from faust.cli import AppCommand, argument

from zoneapp.policy import PolicyError, load_policy
from zoneapp.runtime import Runtime


def check_policy_file(path: str) -> tuple[bool, str]:
    """Validate a policy file; returns (ok, a human summary or the errors)."""
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        return False, str(exc)
    lines = [f"{path}: OK (version {policy.version}, sha256 {policy.digest})"]
    for b in policy.boundaries:
        rules = sum(1 for _ in b.fields.rules()) + len(b.derived)
        lines.append(
            f"  {b.name}: {', '.join(b.sources)} ({b.source_zone.name}) -> {b.destination} "
            f"({b.destination_zone.name}), {rules} field rules, unclassified fields: "
            f"{'block' if b.unclassified_blocks else 'suppress'}"
        )
    return True, "\n".join(lines)


def register_commands(app: faust.App, runtime: Runtime) -> None:
    @app.command(argument("path", required=False))
    async def check_policy(self: AppCommand, path: str | None = None) -> Any:
        """Validate a zone policy file (default: ZONEAPP_POLICY) and exit non-zero if it is bad."""
        ok, text = check_policy_file(path or runtime.settings.policy_path)
        if ok:
            self.say(text)
        else:
            self.say(text, err=sys.stderr)
            raise SystemExit(1)
