"""Operators' surfaces on Faust's web server: statistics, violations, tokens, health,
metrics, the OpenAPI description and the zone map page.

``register_web(app, runtime)`` declares the stats and violations tables and every view;
it returns the hook the boundary agents call after each batch.
"""

from __future__ import annotations

from zoneapp.web.views import register_web

__all__ = ["register_web"]
