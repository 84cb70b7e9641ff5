"""Serving the routes: which blueprints, which of Faust's own views stay off, and the
state the routes find (``zoneapp.web`` docstring)."""

from __future__ import annotations

from typing import Any

import faust
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from zoneapp.web import access, policy, views
from zoneapp.web.state import WEB_STATE, WebState

#: Every route of the operators' API (module-level views on these blueprints).
BLUEPRINTS = (views.blueprint, access.blueprint, policy.blueprint)

#: Faust's own views, off: ``/table`` would serve table contents to anyone; ``/router``
#: shows the cluster's topology (table_route does not need it); graph, stats and
#: ``/performance`` expose internals. The app is created with these settings.
FAUST_VIEWS_OFF: dict[str, Any] = {
    "web_tables_enabled": False,
    "web_router_enabled": False,
    "web_graph_enabled": False,
    "web_stats_enabled": False,
    "web_metrics_enabled": False,
}


def register_web(app: faust.App, state: WebState) -> None:
    """Add every route to ``app``'s web server and attach ``state`` for them to find."""
    for blueprint in BLUEPRINTS:
        blueprint.register(app)
    server = app.web
    if not isinstance(server, AiohttpWeb):  # the routes read request.app: aiohttp's
        raise TypeError(f"zoneapp's routes need Faust's aiohttp web driver, not {server!r}")
    server.web_app[WEB_STATE] = state
