"""Tracing set-up from the standard ``OTEL_*`` variables, and the observer each guard gets.

Apart from the spans because it owns the worker-wide, stateful part: the SDK tracer
provider and its exporter (``export.py``), chosen once per worker, and a bounded
shutdown. Export only with an OTLP endpoint; without one (or with
``OTEL_SDK_DISABLED=true`` / ``OTEL_TRACES_EXPORTER=none``) the SDK is never loaded
and every guard gets a :class:`~zoneapp.observability.context.ContextObserver`
(propagation only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from zoneapp.observability.context import ContextObserver

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from zoneapp.observability.export import DropCountingProcessor
    from zoneapp.pipeline.observer import BoundaryObserver
    from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "zoneapp"
TRACER_NAME = "zoneapp"


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "true"


def _endpoint_for_log(url: str) -> str:
    """scheme://host:port only: no credentials or paths in logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{parts.scheme or 'http'}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<unparsable endpoint>"


class Tracing:
    """The worker's tracing: an SDK tracer provider with an OTLP exporter, or none."""

    def __init__(
        self,
        provider: TracerProvider | None = None,
        processor: DropCountingProcessor | None = None,
        description: str = "off",
    ) -> None:
        self.provider = provider
        self.processor = processor
        self.description = description
        self.tracer: Tracer | None = None if provider is None else provider.get_tracer(TRACER_NAME)

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @property
    def dropped_spans(self) -> int:
        return 0 if self.processor is None else self.processor.dropped

    def observer(self, policy: CompiledPolicy, boundary: CompiledBoundary) -> BoundaryObserver:
        """The observer a boundary's guard gets: spans and context, or context only."""
        if self.tracer is None:
            return ContextObserver(policy, boundary)
        from zoneapp.observability.spans import SpanObserver

        return SpanObserver(policy, boundary, self.tracer)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush and stop the exporter in a daemon thread; never waits more than ``timeout``."""
        thread = self._begin_shutdown()
        if thread is None:
            return True
        thread.join(timeout)
        return self._end_shutdown(thread)

    async def shutdown_async(self, timeout: float = 5.0) -> bool:
        """The same, without blocking the event loop while it waits."""
        thread = self._begin_shutdown()
        if thread is None:
            return True
        deadline = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._end_shutdown(thread)

    def _begin_shutdown(self) -> threading.Thread | None:
        provider = self.provider
        if provider is None:
            return None
        self.provider = None
        thread = threading.Thread(
            target=provider.shutdown, name="zoneapp-otel-shutdown", daemon=True
        )
        thread.start()
        return thread

    def _end_shutdown(self, thread: threading.Thread) -> bool:
        if self.dropped_spans:
            log.warning("tracing: %d spans were dropped (export queue full)", self.dropped_spans)
        return not thread.is_alive()


def _exporter(protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def configure(environ: Mapping[str, str] | None = None) -> Tracing:
    """Tracing as the standard ``OTEL_*`` variables say; off without an OTLP endpoint.

    The SDK itself reads the rest: ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_BSP_*``,
    ``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS``/``TIMEOUT``/``COMPRESSION``/``CERTIFICATE``
    and ``OTEL_RESOURCE_ATTRIBUTES``. A broken configuration turns export off (logged):
    tracing never stops the guard.
    """
    env = os.environ if environ is None else environ
    if _flag(env, "OTEL_SDK_DISABLED"):
        return Tracing(description="off (OTEL_SDK_DISABLED=true); trace context propagated")
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return Tracing(description="off (OTEL_TRACES_EXPORTER=none); trace context propagated")
    endpoint = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ) or ""
    if not endpoint.strip():
        return Tracing(description="off (no OTEL_EXPORTER_OTLP_ENDPOINT); trace context propagated")
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in ("grpc", "http/protobuf"):
        log.error(
            "tracing: OTLP protocol %r is not supported (use grpc or http/protobuf); "
            "spans are not exported",
            protocol,
        )
        return Tracing(description=f"off (unsupported protocol {protocol})")
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider

        from zoneapp.observability.export import DropCountingProcessor

        resource = Resource.create({})
        name = str(resource.attributes.get(SERVICE_NAME, ""))
        if not name or name.startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        processor = DropCountingProcessor(_exporter(protocol), env)
        provider.add_span_processor(processor)
    except Exception as exc:  # a tracing misconfiguration never stops the guard
        log.error("tracing: cannot set up OTLP export (%s); spans are not exported", exc)
        return Tracing(description="off (set-up failed)")
    service = resource.attributes.get(SERVICE_NAME)
    description = f"OTLP {protocol} to {_endpoint_for_log(endpoint.strip())} as {service}"
    return Tracing(provider, processor, description)


_current: Tracing | None = None
_lock = threading.Lock()


def current() -> Tracing:
    """The worker's tracing, configured from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = configure()
            log.info("tracing: %s", _current.description)
        return _current


async def shutdown(timeout: float = 5.0) -> None:
    """Flush spans at worker stop (bounded: never holds the shutdown more than ``timeout``)."""
    global _current
    with _lock:
        tracing, _current = _current, None
    if tracing is not None and not await tracing.shutdown_async(timeout):
        log.warning("tracing: span exporter did not finish within %.0fs", timeout)
