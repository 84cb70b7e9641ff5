"""zoneapp: a trust-zone guard for Kafka, built on Faust.

``faust -A zoneapp worker`` finds :data:`app` here. It is created lazily, so
importing a submodule (the policy loader, the DLP scanner) never builds the app.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("app", "runtime"):
        from zoneapp import application

        return getattr(application, name)
    raise AttributeError(f"module 'zoneapp' has no attribute {name!r}")
