"""Operators' surfaces on Faust's web server: statistics, violations, tokens, health,
metrics, the OpenAPI description and the zone map page.

``register_web(app, runtime)`` declares the stats and violations tables and every view;
it returns the hook the boundary agents call after each batch. Imported lazily, so
``python -m zoneapp.web.auth`` does not load Faust.
"""

from __future__ import annotations

from typing import Any

__all__ = ["register_web"]


def register_web(app: Any, runtime: Any) -> Any:
    from zoneapp.web.views import register_web as register

    return register(app, runtime)
