"""The Faust app: ``faust -A zoneapp worker``.

Importing this module does no I/O: it reads settings, loads the policy and
declares one agent per boundary. A broken policy does not stop the module from
importing (so ``check-policy`` still works); it stops the worker at start-up
with the policy's own error message.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.types import TransportT
from mode import Service
from yarl import URL

from zoneapp.agents import fence, fetch_wait, offset_gaps, reseek
from zoneapp.agents.boundary import FaustSink, register_boundary_agents
from zoneapp.agents.policy_control import install_policy_control
from zoneapp.agents.recovery_watch import install_recovery_watch
from zoneapp.observability import setup as tracing
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.release import KafkaQuarantine, ReleaseService
from zoneapp.runtime import Runtime
from zoneapp.settings import PREFIX, KafkaSecurity, Settings, SettingsError
from zoneapp.tables.releases import ReleasesTable
from zoneapp.tables.stats import register_stats_tables
from zoneapp.tables.violations import register_violations_table
from zoneapp.web.access import faust_audit_sink
from zoneapp.web.cluster import Cluster
from zoneapp.web.release import register_release_web
from zoneapp.web.routes import FAUST_VIEWS_OFF, register_web
from zoneapp.web.state import WebState

log = logging.getLogger("zoneapp")


class ZoneApp(faust.App):
    """Faust's App, refusing to start a worker when the policy or settings are broken."""

    runtime: Runtime
    web_state: WebState

    def __init__(self, *args: Any, fetch_max_wait_ms: int | None = None, **kwargs: Any) -> None:
        #: ZONEAPP_FETCH_MAX_WAIT_MS; None keeps Faust's own wait (agents/fetch_wait.py).
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        """Faust's factory for the consumer's transport: ours when the fetch wait is set."""
        url = self.conf.broker_consumer[0]
        cls = fetch_wait.transport_for(URL(url).scheme, self.fetch_max_wait_ms)
        if cls is None:
            return super()._new_transport()
        transport: TransportT = cls(self.conf.broker_consumer, self)
        return transport

    async def on_first_start(self) -> None:
        if self.runtime.policy is None:
            log.error("zoneapp cannot start: %s", self.runtime.policy_error)
            print(f"zoneapp cannot start: {self.runtime.policy_error}", file=sys.stderr, flush=True)
            raise SystemExit(2)
        keys_error = self.web_state.load_keys()
        if keys_error is not None:
            log.error("zoneapp cannot start: %s", keys_error)
            raise SystemExit(2)
        if self.runtime.settings.web_tls.enabled:
            # `faust worker --web-port/--web-host` rebuild the canonical URL as http://.
            self.conf.canonical_url = f"https://{self.conf.web_host}:{self.conf.web_port}"  # type: ignore[assignment]
        await super().on_first_start()


def _advertised_host(bind: str) -> str:
    """The bind address, unless it is a wildcard (then the host name)."""
    return socket.gethostname() if bind in ("", "0.0.0.0", "::") else bind


def faust_credentials(security: KafkaSecurity) -> Any:
    """Faust's credentials object for the broker, or None for plaintext (here, not in
    settings.py, because only the composition root imports faust)."""
    if security.protocol == "PLAINTEXT":
        return None
    if security.protocol == "SSL":
        return faust.SSLCredentials(security.ssl_context())
    if not security.sasl_username or security.sasl_password is None:
        raise SettingsError(
            f"{security.protocol} needs {PREFIX}SASL_USERNAME and {PREFIX}SASL_PASSWORD(_FILE)"
        )
    return faust.SASLCredentials(
        username=security.sasl_username,
        password=security.sasl_password.reveal().decode(),
        ssl_context=security.ssl_context(),
        mechanism=security.sasl_mechanism,
    )


def create_app(
    settings: Settings | None = None,
    *,
    guard_factory: Callable[..., BoundaryGuard] = BoundaryGuard,
) -> tuple[faust.App, Runtime]:
    """The app and its runtime; ``guard_factory`` builds each boundary's guard (the
    benchmark's baselines pass a subclass, bench/fair.py)."""
    offset_gaps.install()
    reseek.install()
    fence.install()  # after offset_gaps: its stamp is taken last
    settings_error: str | None = None
    credentials = None
    try:
        settings = settings or Settings.from_env()
        credentials = faust_credentials(settings.security)
    except (SettingsError, OSError, ssl.SSLError) as exc:
        # Keep the module importable (commands still work); the worker refuses to start.
        settings, settings_error = Settings(), f"bad settings: {exc}"
    runtime = Runtime.from_settings(settings)
    if settings_error is not None:
        runtime.policy, runtime.policy_error = None, settings_error
    # Faust creates only the last level of its data directory.
    Path(settings.datadir).mkdir(parents=True, exist_ok=True)
    web_host = settings.web_host or _advertised_host(settings.web_bind)
    web_tls: dict[str, object] = {}
    if settings.web_tls.enabled and settings_error is None:
        try:
            # HTTPS: the server's certificate and key come from files named by settings;
            # the canonical URL (what peers are told) says https, so workers call each
            # other over TLS too (zoneapp.web.cluster verifies their certificates).
            web_tls = {
                "web_ssl_context": settings.web_tls.server_context(),
                "canonical_url": f"https://{web_host}:{settings.web_port}",
            }
        except (OSError, ssl.SSLError) as exc:
            runtime.policy = None
            runtime.policy_error = f"bad settings: ZONEAPP_WEB_TLS_*: {type(exc).__name__}: {exc}"
    app = ZoneApp(
        settings.app_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        broker=settings.broker,
        broker_credentials=credentials,
        # The embedded broker has no transactions; at-least-once plus lineage headers
        # (zoneapp-record-id) let downstream consumers drop redelivered duplicates.
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=settings.declare_topics,
        # Group joins wait session_timeout/2 on tansu; 10 s keeps rebalances short.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        # Changelog topics Faust creates at start-up may be missing from the consumer's
        # first metadata answer on real Kafka; refresh within seconds, not 5 minutes.
        consumer_metadata_max_age_ms=5_000,
        producer_linger=0.01,
        producer_max_batch_size=1_048_576,
        producer_acks=-1,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        # Faust's own views (tables, router, graph, stats, performance) are off;
        # zoneapp.web serves its own.
        **FAUST_VIEWS_OFF,
        # The URL other workers use to reach this one (table_route, gathering stats).
        web_host=web_host,
        **web_tls,  # type: ignore[arg-type]
        datadir=settings.datadir,
        store="memory://",
        autodiscover=False,
        origin="zoneapp",
    )
    app.runtime = runtime
    # The tables, then the web routes over them, then the agents that count into them.
    stats, on_batch = register_stats_tables(app, runtime)
    violations = register_violations_table(app, runtime)
    web_state = app.web_state = WebState.build(
        runtime,
        stats=stats,
        violations=violations,
        cluster=Cluster.of_app(app, settings),
        audit=faust_audit_sink(app),
    )
    register_web(app, web_state)
    register_releases(app, runtime, web_state)
    register_boundary_agents(app, runtime, on_batch=on_batch, guard_factory=guard_factory)
    install_policy_control(app, runtime)  # SIGHUP, the candidate, watching (hot reload)
    install_recovery_watch(app)  # a stalled changelog recovery is read again

    @app.service
    class RuntimeService(Service):
        """Logs what this worker runs; at shutdown flushes the stats rows and closes the
        web clients, the HSM and Redis."""

        async def on_start(self) -> None:
            assert runtime.policy is not None
            if runtime.settings.development:
                log.warning("!!! ZONEAPP_ENV=development: memory:// back ends are allowed !!!")
            log.info(
                "web: %s on %s:%d; cluster secret %s; /metrics %s",
                runtime.settings.web_tls.scheme,
                runtime.settings.web_bind,
                runtime.settings.web_port,
                "set" if runtime.settings.cluster_secret is not None else "NOT set",
                "public" if runtime.settings.metrics_public else "needs a viewer key",
            )
            log.info(
                "zoneapp: policy %s version %s (sha256 %s); boundaries: %s; keys for zones: %s",
                runtime.settings.policy_path,
                runtime.policy.version,
                runtime.policy.digest[:12],
                ", ".join(b.name for b in runtime.boundaries),
                ", ".join(sorted(runtime.zones_used)),
            )

        async def on_stop(self) -> None:
            stats.flush()
            await web_state.close()
            log.warning("%s", runtime.totals_line())
            await runtime.close()
            await tracing.shutdown()  # flush spans, bounded (zoneapp.observability.setup)

    @app.timer(interval=30.0)  # type: ignore[untyped-decorator]
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
    from zoneapp.release_commands import register_release_commands

    register_commands(app, runtime)
    register_release_commands(app, runtime)
    return app, runtime


def register_releases(app: faust.App, runtime: Runtime, web_state: WebState) -> None:
    """Approved release from quarantine (zoneapp.release): its table, routes and the timer
    that runs approved releases left unfinished (after a restart)."""
    policy = runtime.policy
    if policy is None:
        return
    settings = runtime.settings
    store = ReleasesTable(app, runtime)

    async def flush() -> None:
        await app.producer.flush()

    service = ReleaseService(
        runtime.require_policy,
        store=store,
        quarantine=KafkaQuarantine(settings),
        sink=FaustSink(app, settings.topic_partitions),
        keyring=lambda: runtime.keyring,
        vault=lambda: runtime.vault,
        audit=web_state.reveal.audit,
        ttl=settings.release_ttl,
        retention=settings.release_retention,
        open_keys=runtime.open_keys,
        flush=flush,
        boundaries=[b.name for b in runtime.boundaries],
    )
    register_release_web(app, service)

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def resume_releases() -> None:
        if store.serving() and service.resume():
            log.info("releases: resuming approved releases that did not finish")
        if store.serving():
            await service.purge()


_built: tuple[faust.App, Runtime] | None = None


def __getattr__(name: str) -> Any:
    """``app`` and ``runtime`` are built on first use (``faust -A zoneapp`` asks for
    ``zoneapp.app``), so importing this module declares nothing."""
    global _built
    if name not in ("app", "runtime"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _built is None:
        _built = create_app()
    return _built[0] if name == "app" else _built[1]
