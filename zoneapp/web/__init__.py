"""Operators' surfaces on Faust's web server: statistics, violations, tokens,
detokenize/decrypt, health, metrics, the OpenAPI description and the zone map page.

How a route finds its state
---------------------------
Every route is a module-level Faust ``View`` on a ``faust.web.Blueprint``
(``views.blueprint``, ``access.blueprint``; the list is ``routes.BLUEPRINTS``), in the
style of ``faust/web/apps/tables.py``. A view holds nothing between requests: it reads
everything through ``state_of(request)``, which is ``request.app[WEB_STATE]``, one
:class:`~zoneapp.web.state.WebState` stored under aiohttp's typed ``AppKey`` on the
aiohttp application that serves the request. The state names what the routes use: the
runtime (settings, policy, key ring, vault), the stats and violations tables (behind
the small ``StatsSource``/``ViolationsSource`` protocols), the API keys and their
authenticator, the cluster (signed calls to peers), the token directory and the
detokenize/decrypt limits with their audit sink.

Who builds it: the composition root, ``zoneapp.application``, declares the Faust tables
(``zoneapp.tables``), hands the stats hook to the boundary agents, builds the state from
what it composed and calls ``routes.register_web(app, state)``; it loads the keys file
when the worker starts (a broken file stops it) and closes the state's clients at stop.

Why:

* **In-process tests of the real routes.** tests/component/web builds the same
  routes on a plain ``faust.App`` with a state of memory back ends (keys, vault,
  ``zoneapp.tables.memory``) and calls them with aiohttp's test client: access control
  is checked on every registered route without a broker, a second worker or any
  monkeypatching. Closures over a worker's objects could only be reached through a
  running worker.
* **One place names the dependencies.** A closure captured whatever was in scope; the
  state's fields are the whole list, typed, and web/ no longer imports the tables: it
  depends on two protocols the tables (and their memory twins) satisfy.
* **Per application, not per process.** The state hangs on the aiohttp application,
  not on a module global or a class attribute, so two applications in one process
  never share keys, limits or nonces (tests/component/web serves two side by side).
* **Why the aiohttp app and not the Faust app.** ``request.app`` is what every handler
  already has, and ``AppKey`` types it: no cast of the Faust app, no attribute that
  only a ``ZoneApp`` carries.

The table protocols are also why a view cannot reach a table's internals: a violation's
owner comes from ``ViolationsSource.owner`` (Faust's router, in the worker), not from
``app.router`` in the view. Without a policy there is no violations table and
``/violations/{id}`` answers 404 (before, the route was not registered; such a worker
refuses to start either way).
"""

from __future__ import annotations
