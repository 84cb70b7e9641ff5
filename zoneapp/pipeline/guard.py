"""A boundary's batch loop: prepare keys, sanitize, store tokens, then produce.

Fail closed: if the HSM or the vault is unavailable, the batch waits and
retries with backoff; nothing from it is produced until every dependency has
answered, and the caller only acknowledges the batch once ``handle`` returns.
Every consumed record ends as exactly one forward or one quarantine plus one
violation event.

Tracing and timing are a :class:`~zoneapp.pipeline.observer.BoundaryObserver` the
guard calls at each step (none by default: every output then starts a fresh trace);
an observer that raises never changes what is produced (see ``observer.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson

from zoneapp.core.ingress import IngressGate
from zoneapp.core.sanitizer import (
    BoundarySanitizer,
    Forward,
    Outcome,
    Parsed,
    Problem,
    Quarantine,
    RawRecord,
)
from zoneapp.core.stats import BoundaryStats, count_outcome
from zoneapp.core.violations import encode_violation, quarantine_headers, violation_event
from zoneapp.keys.base import KeyProviderError
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.retry import Backoff, retry
from zoneapp.keys.subject import SubjectKeys
from zoneapp.pipeline.observer import (
    NO_OBSERVER,
    BoundaryObserver,
    SafeObserver,
    fresh_trace,
    with_trace_headers,
)
from zoneapp.pipeline.sink import Sink
from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy
from zoneapp.transforms import KnownTokens
from zoneapp.vault import TokenVault, VaultUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A rate-limit wait at least this long (seconds) is logged.
LONG_RATE_WAIT = 5.0
TRANSIENT = (KeyProviderError, VaultUnavailableError, ConnectionError, TimeoutError, OSError)


class BoundaryGuard:
    def __init__(
        self,
        policy: CompiledPolicy,
        boundary: CompiledBoundary,
        keyring: KeyRing,
        vault: TokenVault,
        sink: Sink,
        stats: BoundaryStats | None = None,
        *,
        max_backoff: float = 10.0,
        open_keys: Callable[[], Awaitable[None]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: BoundaryObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sanitizer: BoundarySanitizer | None = None,
    ) -> None:
        self.policy = policy
        self.boundary = boundary
        self.keyring = keyring
        self.vault = vault
        self.sink = sink
        # Observed (tracing, timing) only when given an observer: else no clock is read.
        self._timed = observer is not None
        self.observer: BoundaryObserver = (
            NO_OBSERVER if observer is None else SafeObserver(observer, boundary.name)
        )
        # ``sanitizer``: the benchmark's fair baseline passes an identity one (bench/fair.py).
        self.sanitizer = sanitizer or BoundarySanitizer(
            policy, boundary, self.observer if self._timed else None
        )
        self.stats = stats or BoundaryStats(
            boundary.name, boundary.source_zone.name, boundary.destination_zone.name
        )
        self.max_backoff = max_backoff
        # Unbounded: the batch waits for its dependency (keys/retry.py has the schedule).
        self._hold = Backoff(first=0.1, maximum=max_backoff, attempts=None)
        self._open_keys = open_keys
        self._sleep = sleep
        # Schema and rate limit (zoneapp.core.ingress); ``clock`` drives its token buckets.
        self.ingress = IngressGate.of(boundary, clock)
        #: Indices of the last batch's records that waited for the rate limit (stats rows).
        self.delayed: list[int] = []
        for zone, purpose in sorted(self.sanitizer.hmac_purposes()):
            keyring.require_hmac(zone, purpose)
        self.subject_keys = (
            SubjectKeys(keyring, vault, boundary.source_zone.name)
            if self.sanitizer.needs_subject_keys
            else None
        )

    async def _until_ok(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Hold the batch: retry a dependency call with backoff until it answers."""

        def on_retry(attempt: int, delay: float, exc: BaseException) -> None:
            self.stats.dependency_retries += 1
            self.stats.waiting_on = what
            log.warning(
                "boundary %s: %s unavailable (%s); holding the batch, nothing is forwarded; "
                "retry %d in %.1fs",
                self.boundary.name,
                what,
                _describe(exc),
                attempt,
                delay,
            )

        def on_recovered(attempts: int) -> None:
            log.warning(
                "boundary %s: %s is back after %d retries", self.boundary.name, what, attempts
            )

        result = await retry(
            call,
            self._hold,
            TRANSIENT,
            sleep=self._sleep,
            on_retry=on_retry,
            on_recovered=on_recovered,
        )
        self.stats.waiting_on = None
        return result

    async def _prepare_keys(self) -> None:
        if self._open_keys is not None:
            await self._open_keys()
        await self.keyring.prepare()

    async def handle(self, records: Sequence[RawRecord]) -> list[Outcome]:
        self.observer.on_batch_start(records)
        try:
            outcomes = await self._handle(records)
        except BaseException as exc:
            self.observer.on_batch_end(exc)
            raise
        self.observer.on_batch_end(None)
        return outcomes

    @contextmanager
    def _step(self, name: str, **attributes: int | str) -> Iterator[None]:
        """A step the batch's records share, as the observer sees it."""
        self.observer.on_step_start(name, attributes)
        try:
            yield
        except BaseException as exc:
            self.observer.on_step_end(name, exc)
            raise
        self.observer.on_step_end(name, None)

    async def _handle(self, records: Sequence[RawRecord]) -> list[Outcome]:
        started = time.perf_counter()
        stats = self.stats
        stats.consumed += len(records)
        with self._step("keys.prepare"):
            await self._until_ok("HSM", self._prepare_keys)
        parsed = [self._parse(record) for record in records]
        if self.ingress is not None:
            parsed = await self._admit(parsed)
        subject_keys: dict[tuple[str, str], Any] = {}
        if self.subject_keys is not None:
            wanted = {
                (p.tenant, p.subject)
                for p in parsed
                if isinstance(p, Parsed) and p.subject is not None
            }
            if wanted:
                keys = self.subject_keys
                with self._step("subject_keys.get", **{"zoneapp.subjects": len(wanted)}):
                    subject_keys = await self._until_ok("token vault", lambda: keys.get(wanted))
        cache = self.vault.known
        outcomes: list[Outcome] = [
            p if isinstance(p, Quarantine) else self._finish(p, cache, subject_keys) for p in parsed
        ]
        entries = [e for o in outcomes if isinstance(o, Forward) for e in o.vault_entries]
        if entries:
            with self._step("vault.store", **{"zoneapp.vault.entries": len(entries)}):
                collisions = await self._until_ok("token vault", lambda: self.vault.store(entries))
            if collisions:
                # Only the records whose value differs from the one the token holds: the
                # first writer of a token (or its duplicates) is forwarded.
                clashing = {(c.tenant, c.token, c.fingerprint) for c in collisions}
                for i, o in enumerate(outcomes):
                    if isinstance(o, Forward) and any(
                        (e.tenant, e.token, e.fingerprint) in clashing for e in o.vault_entries
                    ):
                        outcomes[i] = Quarantine(
                            [
                                Problem(
                                    "token_collision", detail="token already maps to another value"
                                )
                            ],
                            o.applied,
                        )
        await self._emit(records, outcomes)
        elapsed = (time.perf_counter() - started) / max(1, len(records))
        for o in outcomes:
            stats.on_latency(elapsed)
            count_outcome(stats, o)
        return outcomes

    async def _admit(self, parsed: list[Parsed | Quarantine]) -> list[Parsed | Quarantine]:
        """Ingress checks; with ``over_limit: delay`` the batch waits here (backpressure)."""
        assert self.ingress is not None
        admitted = self.ingress.admit(parsed)
        self.delayed = admitted.delayed
        buckets = self.ingress.buckets
        if buckets is not None:
            self.stats.rate_buckets = len(buckets)
            self.stats.rate_overflow = buckets.overflow
        if admitted.too_long:
            assert self.ingress.limit is not None
            log.warning(
                "boundary %s: %d records would wait more than %gs for the ingress rate limit "
                "(max_wait); quarantined as rate_limited",
                self.boundary.name,
                admitted.too_long,
                self.ingress.limit.max_wait,
            )
        if admitted.wait > 0:
            if admitted.wait >= LONG_RATE_WAIT:
                log.warning(
                    "boundary %s: the ingress rate limit holds the batch for %.1fs "
                    "(%d records over it); nothing is lost",
                    self.boundary.name,
                    admitted.wait,
                    len(admitted.delayed),
                )
            self.stats.rate_delayed += len(admitted.delayed)
            self.stats.rate_delay_seconds += admitted.wait
            self.stats.waiting_on = "rate limit"
            try:
                with self._step("ingress.delay", **{"zoneapp.delayed": len(admitted.delayed)}):
                    await self._sleep(admitted.wait)
            except BaseException:
                # Nothing of the batch was released: it will be redelivered and charged
                # then, so its tokens go back now (no double charge).
                self.ingress.give_back(admitted)
                raise
            finally:
                self.stats.waiting_on = None
        return admitted.items

    def _parse(self, record: RawRecord) -> Parsed | Quarantine:
        started = time.time_ns() if self._timed else 0
        result: Parsed | Quarantine
        try:
            result = self.sanitizer.parse(record, self.keyring)
        except Exception as exc:
            result = self._internal_error(record, exc)
        if self._timed:
            self.observer.on_record_parsed(record, started, time.time_ns())
        return result

    def _finish(
        self, parsed: Parsed, cache: KnownTokens, keys: Mapping[tuple[str, str], Any]
    ) -> Outcome:
        started = time.time_ns() if self._timed else 0
        result: Outcome
        try:
            result = self.sanitizer.finish(parsed, self.keyring, cache, keys)
        except Exception as exc:
            result = self._internal_error(parsed.record, exc)
        if self._timed:
            self.observer.on_record_sanitized(parsed.record, started, time.time_ns())
        return result

    def _internal_error(self, record: RawRecord, exc: Exception) -> Quarantine:
        """A bug quarantines the record: it never forwards it, nor crashes the worker."""
        self.stats.internal_errors += 1
        log.error(
            "boundary %s: internal error on %s: %s",
            self.boundary.name,
            record.record_id,
            type(exc).__name__,
        )
        return Quarantine([Problem("internal_error", detail=type(exc).__name__)])

    async def _emit(self, records: Sequence[RawRecord], outcomes: Sequence[Outcome]) -> None:
        boundary = self.boundary
        send = self.sink.send
        observer = self.observer
        for record, outcome in zip(records, outcomes, strict=True):
            # The outputs' traceparent/tracestate: the observer's (tracing), else a fresh trace.
            out = observer.on_record_outcome(record, outcome) or fresh_trace()
            if isinstance(outcome, Forward):
                await send(
                    boundary.destination,
                    outcome.key,
                    outcome.value,
                    with_trace_headers(outcome.headers, out.headers),
                    record.timestamp_ms,
                )
                observer.on_record_sent(record)
                continue
            event = violation_event(self.policy, boundary, record, outcome.problems, out.trace_id)
            observer.on_violation(record, event["id"])
            await send(
                boundary.source_zone.quarantine_topic,
                record.key,
                record.value,
                with_trace_headers(quarantine_headers(record, boundary, event), out.headers),
                record.timestamp_ms,
            )
            await send(
                self.policy.security_topic,
                orjson.dumps(event["id"]),
                encode_violation(event),
                [("content-type", b"application/json"), *out.headers],
                None,
            )
            observer.on_record_sent(record)
            log.info(
                "boundary %s: quarantined %s (%s at %s)",
                boundary.name,
                record.record_id,
                outcome.reason,
                outcome.problems[0].path,
            )


def _describe(exc: BaseException) -> str:
    """Exception type and our own message; our key/vault errors never carry secrets."""
    if isinstance(exc, KeyProviderError | VaultUnavailableError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
