"""The one object the routes find their state through: ``request.app[WEB_STATE]``.

The composition root (``zoneapp.application``) builds a :class:`WebState` from what it
composed (the runtime, the stats and violations tables, the cluster, the audit sink)
and attaches it to the aiohttp application Faust serves; the in-process tests attach
one built on memory back ends. Why: see the ``zoneapp.web`` package docstring.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from aiohttp import web

from zoneapp.access.fields import AuditSink
from zoneapp.ops.reconcile import LedgerRuns
from zoneapp.runtime import Runtime
from zoneapp.settings import Settings
from zoneapp.web.auth import ApiKeyFile, Authenticator
from zoneapp.web.cluster import Cluster
from zoneapp.web.ratelimit import RateLimiter
from zoneapp.web.tokens import TokenDirectory

log = logging.getLogger(__name__)

SUPPRESSED_LOG_INTERVAL = 30.0


class StatsSource(Protocol):
    """The stats rows this process answers for (``zoneapp.tables.stats``)."""

    def local_rows(self) -> list[dict[str, Any]]: ...


class ViolationsSource(Protocol):
    """The violation events this process answers for (``zoneapp.tables.violations``)."""

    def get(self, vid: str) -> dict[str, Any] | None: ...

    def local_query(self, limit: int, **filters: Any) -> list[dict[str, Any]]: ...

    def owner(self, vid: str) -> str | None: ...


@dataclass(eq=False)
class RevealLimits:
    """What ``/detokenize`` and ``/decrypt`` share: their audit sink, the per-caller limit
    and the budget of audited unauthenticated calls (``zoneapp.web.access``)."""

    audit: AuditSink
    per_caller: RateLimiter
    anonymous: RateLimiter
    anonymous_all: RateLimiter
    #: The policy's zone names: the only zone text audited for an unauthenticated call.
    zones: frozenset[str]
    suppressed: int = 0
    _suppressed_logged: int = field(default=0, repr=False)
    _suppressed_at: float = field(default=0.0, repr=False)

    @classmethod
    def of(cls, settings: Settings, audit: AuditSink, zones: frozenset[str]) -> RevealLimits:
        return cls(
            audit,
            RateLimiter(settings.access_rate, settings.access_burst),
            RateLimiter(settings.anonymous_rate, settings.anonymous_burst),
            RateLimiter(10 * settings.anonymous_rate, 10 * settings.anonymous_burst),
            zones,
        )

    def count_suppressed(self) -> None:
        """Count an unaudited refusal; a warning with the number every 30 s at most."""
        self.suppressed += 1
        now = time.monotonic()
        if now - self._suppressed_at >= SUPPRESSED_LOG_INTERVAL:
            log.warning(
                "web: %d unauthenticated detokenize/decrypt call(s) refused without audit "
                "(over ZONEAPP_ANONYMOUS_RATE) in the last %.0f s",
                self.suppressed - self._suppressed_logged,
                SUPPRESSED_LOG_INTERVAL,
            )
            self._suppressed_at, self._suppressed_logged = now, self.suppressed


@dataclass(frozen=True, eq=False)
class WebState:
    """Everything a route reads: built once by the composition root, shared by all routes."""

    runtime: Runtime
    stats: StatsSource
    #: None without a policy (the worker then refuses to start).
    violations: ViolationsSource | None
    cluster: Cluster
    keys: ApiKeyFile
    gate: Authenticator
    tokens: TokenDirectory
    reveal: RevealLimits
    #: ``/reconcile`` runs, and the last one for ``/zones``.
    ledgers: LedgerRuns = field(default_factory=LedgerRuns)

    @classmethod
    def build(
        cls,
        runtime: Runtime,
        *,
        stats: StatsSource,
        violations: ViolationsSource | None,
        cluster: Cluster,
        audit: AuditSink,
        ledgers: LedgerRuns | None = None,
    ) -> WebState:
        settings = runtime.settings
        keys = ApiKeyFile(settings.api_keys_file)
        zones = frozenset(runtime.policy.zones) if runtime.policy is not None else frozenset()
        tokens = TokenDirectory(lambda: runtime.vault, runtime.policy, settings.vault_url)
        runtime.swap_listeners.append(lambda generation: tokens.add_policy(generation.policy))
        return cls(
            runtime=runtime,
            stats=stats,
            violations=violations,
            cluster=cluster,
            keys=keys,
            gate=Authenticator(keys.current, rate=settings.auth_rate, burst=settings.auth_burst),
            tokens=tokens,
            reveal=RevealLimits.of(settings, audit, zones),
            ledgers=ledgers or LedgerRuns(ttl=settings.reconcile_cache),
        )

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def load_keys(self) -> str | None:
        """Load the API keys file: None, or why it cannot be used (the worker stops)."""
        keys = self.keys.load()
        if keys is not None:
            log.info(
                "web: %d API keys from %s",
                len(keys.entries),
                self.settings.api_keys_file or "(none: every protected view answers 401)",
            )
        return self.keys.error

    async def close(self) -> None:
        await self.tokens.close()
        await self.cluster.close()
        self.gate.close()


#: Where a route finds the state: ``request.app[WEB_STATE]`` (aiohttp's typed app key).
WEB_STATE = web.AppKey("zoneapp.web.state", WebState)


def state_of(request: Any) -> WebState:
    """The state of the application serving ``request`` (an aiohttp request)."""
    return cast(web.Request, request).app[WEB_STATE]
