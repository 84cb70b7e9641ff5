"""Hot reload: one immutable policy generation at a time, swapped between batches.

A worker holds its policy in a :class:`PolicySwitch`. A reload (SIGHUP, ``POST
/policy/reload``, the CLI, or a change of the file when watching is on) reads the file,
validates it with the same loader ``check-policy`` uses, checks that it keeps this
worker's boundaries and topics, builds every boundary's guard for it, and only then
replaces the active :class:`PolicyGeneration` with one assignment. A boundary agent
reads the active generation once at the start of each batch (:class:`BoundaryGuards`),
so a batch is sanitized, its violations written and its lineage headers stamped under
exactly one policy: the old one if it started before the swap, the new one otherwise.

Decisions:

- **An invalid file changes nothing.** Invalid is what ``check-policy`` refuses: the
  loader's checks and the flow proof (``zoneapp.policy.flow``; a live change must not
  open a leak across hops). The old generation stays active; the error is
  logged with the file, line and problem (``PolicyError``), counted
  (``zoneapp_policy_reload_failures_total``) and shown as
  ``zoneapp_policy_reload_failed 1`` until a reload succeeds.
- **Agents are fixed at start** (Faust declares them, their topics and the stats tables
  when the app is built), so a policy that adds or removes one of this worker's
  boundaries, or changes a boundary's sources, destination, zones or quarantine topic,
  or the security topic, is refused with what changed and "restart the worker". Every
  other change (rules, classes, detectors, allow lists, limits, tenants, version)
  applies live.
- **A file whose bytes did not change is "unchanged"**: no new generation.
- **An unchanged ingress rate limit keeps its token buckets** across a reload (no fresh
  burst for every tenant); a changed one starts with full buckets.
- **Promote** writes the candidate's bytes (those that were shadowed, checked by their
  SHA-256) over the active policy file, atomically (a temporary file and a rename), so
  a restart keeps the promoted policy; a file that cannot be written refuses the promote.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoneapp.core.sanitizer import Outcome, RawRecord
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.shadow import ShadowBoundary, ShadowReport
from zoneapp.policy import CompiledBoundary, CompiledPolicy, PolicyError, compile_policy_text
from zoneapp.policy.flow import prove_flow

log = logging.getLogger(__name__)

APPLIED, UNCHANGED, REFUSED = "applied", "unchanged", "refused"


@dataclass(frozen=True, slots=True)
class PolicyGeneration:
    """One compiled policy as the worker applies it; never mutated, replaced whole."""

    number: int
    policy: CompiledPolicy
    raw: bytes = field(repr=False)
    path: str
    loaded_at: float
    trigger: str

    @property
    def version(self) -> str:
        return self.policy.version

    @property
    def sha256(self) -> str:
        return self.policy.digest

    def brief(self) -> dict[str, Any]:
        return {
            "generation": self.number,
            "version": self.version,
            "sha256": self.sha256,
            "path": self.path,
            "loaded_at": self.loaded_at,
            "trigger": self.trigger,
        }


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one worker did with a reload or promote command."""

    status: str
    active: dict[str, Any]
    error: str | None = None
    candidate: dict[str, Any] | None = None
    candidate_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "active": self.active,
            "error": self.error,
            "candidate": self.candidate,
            "candidate_error": self.candidate_error,
        }


def selected_boundaries(policy: CompiledPolicy, selected: Sequence[str]) -> list[CompiledBoundary]:
    return [b for b in policy.boundaries if not selected or b.name in selected]


def restart_needed(old: CompiledPolicy, new: CompiledPolicy, selected: Sequence[str]) -> list[str]:
    """What ``new`` changes that a running worker cannot apply (its agents, topics, keys)."""
    before = {b.name: b for b in selected_boundaries(old, selected)}
    after = {b.name: b for b in selected_boundaries(new, selected)}
    problems = [f"boundary {n!r} added" for n in sorted(set(after) - set(before))]
    problems += [f"boundary {n!r} removed" for n in sorted(set(before) - set(after))]
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        for what, x, y in (
            ("sources", a.sources, b.sources),
            ("destination", a.destination, b.destination),
            ("source zone", a.source_zone.name, b.source_zone.name),
            ("destination zone", a.destination_zone.name, b.destination_zone.name),
            ("quarantine topic", a.source_zone.quarantine_topic, b.source_zone.quarantine_topic),
        ):
            if x != y:
                problems.append(f"boundary {name!r}: {what} changed")
    if old.security_topic != new.security_topic:
        problems.append("security_topic changed")
    return problems


#: Called with a policy about to become active (or candidate); raises to refuse it.
Preflight = Callable[[CompiledPolicy, str], None]


class PolicySwitch:
    """This worker's active policy generation, its candidate, and how they change."""

    def __init__(
        self,
        policy: CompiledPolicy,
        raw: bytes,
        path: str,
        *,
        selected: Sequence[str] = (),
        candidate_path: str | None = None,
        on_swap: Callable[[PolicyGeneration], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.selected = tuple(selected)
        self.candidate_path = candidate_path
        self._clock = clock
        self.active = PolicyGeneration(1, policy, raw, path, clock(), "start")
        self.candidate: PolicyGeneration | None = None
        self.on_swap = on_swap
        self._numbers = 1
        self._lock: asyncio.Lock | None = None
        self.preflights: list[Preflight] = []
        #: Reload and promote attempts that changed the active policy, and refusals.
        self.applied = 0
        self.failures = 0
        self.candidate_failures = 0
        #: True while the last attempt on the active file was refused.
        self.failed = False
        self.last_error: str | None = None
        self.candidate_error: str | None = None
        #: Shadow reports per boundary, for the current (active, candidate) pair.
        self.reports: dict[str, ShadowReport] = {}
        # Bytes of files already refused, so watching does not retry (and re-log) them.
        self._refused: dict[str, str] = {}

    @classmethod
    def load(
        cls,
        path: str,
        *,
        selected: Sequence[str] = (),
        candidate_path: str | None = None,
        on_swap: Callable[[PolicyGeneration], None] | None = None,
    ) -> PolicySwitch:
        """Read and compile ``path`` (PolicyError if it is bad): the start-up generation."""
        raw = _read(path)
        return cls(
            compile_policy_text(raw, path),
            raw,
            path,
            selected=selected,
            candidate_path=candidate_path,
            on_swap=on_swap,
        )

    # -- reading -------------------------------------------------------------------------

    def _generation(
        self, policy: CompiledPolicy, raw: bytes, path: str, trigger: str
    ) -> PolicyGeneration:
        self._numbers += 1
        return PolicyGeneration(self._numbers, policy, raw, path, self._clock(), trigger)

    def _check(self, policy: CompiledPolicy, role: str) -> None:
        """Everything but the loader's own checks: refuse what a live worker cannot apply."""
        unknown = set(self.selected) - {b.name for b in policy.boundaries}
        if unknown:
            raise PolicyError(
                [f"ZONEAPP_BOUNDARIES names boundaries not in it: {', '.join(sorted(unknown))}"],
                policy.source,
            )
        proof = prove_flow(policy)
        if not proof.ok:
            raise PolicyError(
                ["the flow proof refuses the policy:", *proof.problems], policy.source
            )
        changes = restart_needed(self.active.policy, policy, self.selected)
        if changes:
            raise PolicyError(
                [
                    *changes,
                    "a running worker's agents and topics are fixed at start: restart the "
                    "worker to apply this policy",
                ],
                policy.source,
            )
        for preflight in self.preflights:
            try:
                preflight(policy, role)
            except PolicyError:
                raise
            except Exception as exc:
                raise PolicyError(
                    [f"cannot be applied on this worker: {type(exc).__name__}: {exc}"],
                    policy.source,
                ) from None

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    # -- commands ------------------------------------------------------------------------

    async def reload(self, trigger: str) -> ReloadResult:
        """Re-read the policy file (and the candidate file): validate, then swap or keep."""
        async with self.lock:
            status, error = await self._reload_active(trigger)
            candidate_error = await self._reload_candidate(trigger)
            return self._result(status, error, candidate_error)

    async def load_candidate(self, trigger: str) -> ReloadResult:
        """Read the candidate file only (at start-up)."""
        async with self.lock:
            return self._result(UNCHANGED, None, await self._reload_candidate(trigger))

    async def promote(self, sha256: str, trigger: str) -> ReloadResult:
        """Make the shadowed candidate with this SHA-256 the active policy, on disk too."""
        async with self.lock:
            candidate = self.candidate
            if self.active.sha256 == sha256:  # already promoted here (a retried command)
                return self._result(UNCHANGED, None, self.candidate_error)
            if candidate is None:
                return self._refuse_promote("no candidate policy is loaded on this worker")
            if candidate.sha256 != sha256:
                return self._refuse_promote(
                    f"the candidate here is sha256 {candidate.sha256}, not {sha256}"
                )
            try:
                self._check(candidate.policy, "active")
            except Exception as exc:
                return self._refuse_promote(str(_as_policy_error(exc, self.path)))
            try:
                on_disk = await asyncio.to_thread(_read_or_none, self.path)
                if on_disk is None or hashlib.sha256(on_disk).hexdigest() != sha256:
                    await asyncio.to_thread(_replace, self.path, candidate.raw)
            except OSError as exc:
                return self._refuse_promote(
                    f"cannot write {self.path}: {exc.strerror or type(exc).__name__}; "
                    "the active policy stays"
                )
            self._swap(self._generation(candidate.policy, candidate.raw, self.path, trigger))
            self.candidate = None
            self.reports.clear()
            log.warning(
                "policy: candidate %s (sha256 %s) promoted by %s; it is now %s",
                candidate.version,
                sha256[:12],
                trigger,
                self.path,
            )
            return self._result(APPLIED, None, None)

    def _refuse_promote(self, why: str) -> ReloadResult:
        log.error("policy: promote refused: %s", why)
        self.failures += 1
        return self._result(REFUSED, why, self.candidate_error)

    def _result(self, status: str, error: str | None, candidate_error: str | None) -> ReloadResult:
        return ReloadResult(
            status,
            self.active.brief(),
            error,
            None if self.candidate is None else self.candidate.brief(),
            candidate_error,
        )

    async def _compile(self, path: str) -> tuple[bytes, CompiledPolicy]:
        raw = await asyncio.to_thread(_read, path)
        # Compiling (pydantic, the DLP engine) takes CPU: off the agents' event loop.
        policy = await asyncio.to_thread(compile_policy_text, raw, path)
        return raw, policy

    async def _reload_active(self, trigger: str) -> tuple[str, str | None]:
        try:
            raw, policy = await self._compile(self.path)
            if policy.digest == self.active.sha256:
                self.failed, self.last_error = False, None
                log.info("policy: reload (%s): %s unchanged", trigger, self.path)
                return UNCHANGED, None
            self._check(policy, "active")
        except Exception as exc:  # any error keeps the active policy, counted and logged
            exc = _as_policy_error(exc, self.path)
            self.failures += 1
            self.failed, self.last_error = True, str(exc)
            self._refused[self.path] = _digest_or_empty(self.path)
            log.error(
                "policy: reload (%s) refused; version %s (sha256 %s) stays active: %s",
                trigger,
                self.active.version,
                self.active.sha256[:12],
                exc,
            )
            return REFUSED, str(exc)
        old = self.active
        self._swap(self._generation(policy, raw, self.path, trigger))
        self.failed, self.last_error = False, None
        log.warning(
            "policy: reload (%s) applied: version %s (sha256 %s) replaces %s (sha256 %s) "
            "from the next batch of every boundary",
            trigger,
            policy.version,
            policy.digest[:12],
            old.version,
            old.sha256[:12],
        )
        return APPLIED, None

    async def _reload_candidate(self, trigger: str) -> str | None:
        path = self.candidate_path
        if not path:
            return None
        try:
            raw, policy = await self._compile(path)
            if policy.digest == self.active.sha256:
                if self.candidate is not None:
                    log.info("policy: candidate %s equals the active policy: shadow off", path)
                self._set_candidate(None)
                self.candidate_error = None
                return None
            if self.candidate is not None and self.candidate.sha256 == policy.digest:
                self.candidate_error = None
                return None
            self._check(policy, "candidate")
        except Exception as exc:  # any error keeps the previous candidate, counted and logged
            exc = _as_policy_error(exc, path)
            self.candidate_failures += 1
            self.candidate_error = str(exc)
            self._refused[path] = _digest_or_empty(path)
            log.error(
                "policy: candidate (%s) refused; shadow keeps the previous one: %s", trigger, exc
            )
            return str(exc)
        self._set_candidate(self._generation(policy, raw, path, trigger))
        self.candidate_error = None
        log.warning(
            "policy: candidate %s (sha256 %s) from %s runs in shadow mode",
            policy.version,
            policy.digest[:12],
            path,
        )
        return None

    def _swap(self, generation: PolicyGeneration) -> None:
        # One assignment, on the event loop, between awaits: agents read it once a batch.
        self.active = generation
        self.reports.clear()
        if self.candidate is not None and self.candidate.sha256 == generation.sha256:
            self.candidate = None
        self.applied += 1
        if self.on_swap is not None:
            self.on_swap(generation)

    def _set_candidate(self, generation: PolicyGeneration | None) -> None:
        self.candidate = generation
        self.reports.clear()

    # -- watching ------------------------------------------------------------------------

    def changed_on_disk(self) -> bool:
        """True when the policy or candidate file holds bytes not yet active, shadowed or
        refused (for watching: a bad file is reported once, not every poll)."""
        for path, known in (
            (self.path, self.active.sha256),
            (self.candidate_path, self.candidate.sha256 if self.candidate else None),
        ):
            if not path:
                continue
            digest = _digest_or_empty(path)
            if digest and digest != known and digest != self._refused.get(path):
                if path == self.candidate_path and digest == self.active.sha256:
                    continue
                return True
        return False

    # -- shadow --------------------------------------------------------------------------

    def report(self, boundary: str) -> ShadowReport | None:
        """The shadow report of ``boundary`` for the current pair, or None without a candidate."""
        candidate = self.candidate
        if candidate is None:
            return None
        report = self.reports.get(boundary)
        if report is None:
            report = self.reports[boundary] = ShadowReport(
                boundary, self.active.sha256, candidate.sha256, self._clock()
            )
        return report

    def state(self) -> dict[str, Any]:
        """This worker's policy state: for ``GET /policy``, ``/shadow`` and ``/metrics``."""
        return {
            "active": self.active.brief(),
            "candidate": None if self.candidate is None else self.candidate.brief(),
            "reload_failed": self.failed,
            "last_error": self.last_error,
            "candidate_error": self.candidate_error,
            "reloads_applied": self.applied,
            "reload_failures": self.failures,
            "candidate_failures": self.candidate_failures,
        }


class BoundaryGuards:
    """One boundary's guard under whatever generation is active when a batch starts.

    ``build(policy, boundary)`` makes a guard (the composition root decides its keys,
    vault, sink and observer). A new generation's guard is built in the switch's
    preflight, before the swap, so a policy whose guard cannot be built is refused and
    the agent never meets it.
    """

    def __init__(
        self,
        switch: PolicySwitch,
        boundary: str,
        build: Callable[[CompiledPolicy, CompiledBoundary], BoundaryGuard],
    ) -> None:
        self.switch = switch
        self.boundary = boundary
        self._build = build
        self._guards: dict[int, tuple[CompiledPolicy, BoundaryGuard]] = {}
        self._shadows: dict[tuple[int, int], ShadowBoundary] = {}
        #: The guard of the last batch handled (the agent reads its ``delayed``).
        self.last: BoundaryGuard | None = None
        switch.preflights.append(self._preflight)

    def _preflight(self, policy: CompiledPolicy, role: str) -> None:
        if role == "active":
            self.guard_for(policy)
        else:
            self.shadow_for(self.guard_for(self.switch.active.policy), policy)

    def guard_for(self, policy: CompiledPolicy) -> BoundaryGuard:
        held = self._guards.get(id(policy))
        if held is not None and held[0] is policy:
            return held[1]
        guard = self._build(policy, policy.boundary(self.boundary))
        # Keep the active generation's guard and the newest one only.
        active = self.switch.active.policy
        self._guards = {k: v for k, v in self._guards.items() if v[0] is active}
        current = self._guards.get(id(active))
        if current is not None:
            _carry_rate_limit(current[1], guard)
        self._guards[id(policy)] = (policy, guard)
        return guard

    def shadow_for(self, guard: BoundaryGuard, candidate: CompiledPolicy) -> ShadowBoundary:
        slot = (id(guard.policy), id(candidate))
        shadow = self._shadows.get(slot)
        if shadow is None or shadow.candidate is not candidate.boundary(self.boundary):
            shadow = ShadowBoundary(guard.boundary, candidate, guard.keyring)
            self._shadows = {slot: shadow}
        return shadow

    @property
    def guard(self) -> BoundaryGuard:
        """The guard the next batch will use."""
        return self.guard_for(self.switch.active.policy)

    async def handle(self, records: Sequence[RawRecord]) -> list[Outcome]:
        generation = self.switch.active  # read once: the whole batch under one generation
        guard = self.last = self.guard_for(generation.policy)
        outcomes = await guard.handle(records)
        candidate = self.switch.candidate
        if candidate is not None and self.switch.active is generation:
            report = self.switch.report(self.boundary)
            if report is not None:
                try:
                    shadow = self.shadow_for(guard, candidate.policy)
                    await shadow.observe(report, records, outcomes, guard.vault.known)
                except Exception as exc:  # never let the shadow touch what crossed
                    report.batches_skipped += 1
                    log.warning("shadow %s: batch skipped (%s)", self.boundary, type(exc).__name__)
        return outcomes


def _carry_rate_limit(old: BoundaryGuard, new: BoundaryGuard) -> None:
    """An unchanged ingress rate limit keeps its token buckets across a reload, so a
    reload never hands every tenant a fresh burst; a changed one starts full."""
    if (
        old.ingress is not None
        and new.ingress is not None
        and old.ingress.buckets is not None
        and new.ingress.limit == old.ingress.limit
    ):
        new.ingress.buckets = old.ingress.buckets


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError([f"cannot read the file: {exc.strerror or exc}"], path) from None


def _read_or_none(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _digest_or_empty(path: str) -> str:
    raw = _read_or_none(path)
    return "" if raw is None else hashlib.sha256(raw).hexdigest()


def _as_policy_error(exc: Exception, path: str) -> PolicyError:
    """A refusal for any error of a reload; one that is not a PolicyError is named by type
    only (its text could quote the file)."""
    if isinstance(exc, PolicyError):
        return exc
    return PolicyError([f"the policy could not be compiled ({type(exc).__name__})"], path)


def _replace(path: str, raw: bytes) -> None:
    """Write ``raw`` to ``path`` atomically: a new temporary file beside it (a random
    name, created exclusively, so a planted symlink is never followed), with the old
    file's permission bits, then a rename."""
    target = Path(path)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
