"""The Faust app: ``faust -A zoneapp worker``.

Importing this module does no I/O: it reads settings, loads the policy and
declares one agent per boundary. A broken policy does not stop the module from
importing (so ``check-policy`` still works); it stops the worker at start-up
with the policy's own error message.
"""

from __future__ import annotations

import logging
import sys

import faust
from mode import Service

from zoneapp.agents.boundary import register_boundary_agents
from zoneapp.runtime import Runtime
from zoneapp.settings import Settings

log = logging.getLogger("zoneapp")


def create_app(settings: Settings | None = None) -> tuple[faust.App, Runtime]:
    settings = settings or Settings.from_env()
    runtime = Runtime.from_settings(settings)
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=settings.security.faust_credentials(),
        # The embedded broker has no transactions; at-least-once plus lineage headers
        # (zoneapp-record-id) let downstream consumers drop redelivered duplicates.
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=settings.declare_topics,
        # Group joins wait session_timeout/2 on tansu; 10 s keeps rebalances short.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        producer_linger=0.01,
        producer_max_batch_size=1_048_576,
        producer_acks=-1,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        # Faust's /table/ endpoint would serve table contents to anyone.
        web_tables_enabled=False,
        datadir=settings.datadir,
        store="memory://",
        autodiscover=False,
        origin="zoneapp",
    )
    register_boundary_agents(app, runtime)

    @app.service
    class PolicyGate(Service):
        """Refuses to run a worker on a broken policy, saying why."""

        async def on_start(self) -> None:
            if runtime.policy is None:
                log.error("%s", runtime.policy_error)
                print(runtime.policy_error, file=sys.stderr, flush=True)
                raise SystemExit(2)
            log.info(
                "zoneapp: policy %s version %s (sha256 %s); boundaries: %s; keys for zones: %s",
                settings.policy_path,
                runtime.policy.version,
                runtime.policy.digest[:12],
                ", ".join(b.name for b in runtime.boundaries),
                ", ".join(sorted(runtime.zones_used)),
            )

        async def on_stop(self) -> None:
            log.warning("%s", runtime.totals_line())
            await runtime.close()

    @app.timer(interval=30.0)
    async def report_stats() -> None:
        for stats in runtime.stats.values():
            log.info(
                "boundary %s: consumed=%d forwarded=%d quarantined=%d in_flight=%d "
                "suppressed_fields=%d waiting_on=%s",
                stats.boundary,
                stats.consumed,
                stats.forwarded,
                stats.quarantined,
                stats.in_flight,
                stats.suppressed_fields,
                stats.waiting_on or "-",
            )
        log.info("%s", runtime.totals_line())

    from zoneapp.commands import register_commands

    register_commands(app, runtime)
    return app, runtime


app, runtime = create_app()
