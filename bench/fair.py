"""Fair Faust: zoneapp's own worker, batch loop, guard and sink, with an identity sanitizer.

``faust -A bench.fair worker`` on the stack's environment. Everything a zoneapp
boundary does runs (take_events batches, key preparation, the guard's steps, the
trace headers, the sink straight to the producer, the stats tables) except the
sanitizer's work: :class:`IdentitySanitizer` forwards key, value and headers as
they came. The ratio zoneapp / fair is the cost of sanitizing alone.

The identity sanitizer is handed to the guard through the app's ``guard_factory``
(zoneapp.application.create_app); nothing is patched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoneapp.core.sanitizer import BoundarySanitizer, Forward, Outcome, Parsed, RawRecord
from zoneapp.keys.envelope import KeyRing
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.transforms import KnownTokens

__all__ = ["IdentitySanitizer", "fair_guard"]


class IdentitySanitizer(BoundarySanitizer):
    """Forwards every record unchanged: no parse, no rules, no DLP, no lineage."""

    def hmac_purposes(self) -> set[tuple[str, str]]:
        return set()

    @property
    def needs_subject_keys(self) -> bool:
        return False

    def parse(self, record: RawRecord, keyring: KeyRing) -> Parsed:
        return Parsed(record, None, "", None)

    def finish(
        self,
        parsed: Parsed,
        keyring: KeyRing,
        stored_tokens: KnownTokens | None = None,
        subject_keys: Mapping[tuple[str, str], Any] | None = None,
    ) -> Outcome:
        record = parsed.record
        return Forward(record.key, record.value, list(record.headers), [], {}, 0)


def fair_guard(*args: Any, **kwargs: Any) -> BoundaryGuard:
    """A BoundaryGuard (same arguments) whose sanitizer is the identity."""
    policy, boundary = args[0], args[1]
    return BoundaryGuard(*args, sanitizer=IdentitySanitizer(policy, boundary), **kwargs)


#: The Faust app, built on first access (below).
app: Any


def __getattr__(name: str) -> Any:
    """``app`` is built on first use (``faust -A bench.fair`` asks for it)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global app
    from zoneapp.application import create_app

    app = create_app(guard_factory=fair_guard)[0]
    return app
