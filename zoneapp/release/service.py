"""Release from quarantine, end to end: file, approve, re-run the boundary, keep the record.

What the worker does once a second officer approved (``ReleaseService.approve``):

1. reads each listed record's original from the source zone's quarantine topic
   (``zoneapp.release.quarantine``);
2. runs them through a :class:`~zoneapp.pipeline.guard.BoundaryGuard` of the boundary with
   the exception applied (``zoneapp.release.exception``): keys, vault writes, fail-closed
   retries, default-deny and the DLP scan are the guard's own;
3. what the guard forwards goes to the boundary's destination with a ``zoneapp-release-id``
   header added to its lineage; what it would quarantine again is *not* produced again (its
   original stays where it is, in the quarantine topic) and the release keeps why: reason,
   place and detector of each problem, never a value;
4. the outcome per record is stored in the releases table and audited.

Every step, allowed or refused, is written to ``audit.access`` (``release.request``,
``release.approve``, ``release.run``, ``release.preview``) before it takes effect: an
audit that cannot be written refuses the step. A release that was approved but did not
finish (the worker stopped) runs again when the worker starts (:meth:`resume`); its
records may then reach the destination twice, with the same ``zoneapp-release-id`` and
``zoneapp-record-id``, which is how a consumer recognises the repeat (at-least-once, as
everywhere else).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from zoneapp.access.fields import AuditSink, audit_event
from zoneapp.core.sanitizer import BoundarySanitizer, Forward, Quarantine
from zoneapp.core.stats import BoundaryStats
from zoneapp.dlp import joined_views
from zoneapp.keys.envelope import KeyRing
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import Headers, Sink
from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy
from zoneapp.release.exception import with_exception
from zoneapp.release.model import (
    APPROVED,
    DONE,
    EXPIRED,
    NOT_FOUND,
    PENDING,
    RELEASED,
    RELEASING,
    STILL_QUARANTINED,
    Officer,
    Release,
    ReleaseBook,
    ReleaseError,
    ReleaseException,
)
from zoneapp.release.quarantine import QuarantineSource
from zoneapp.vault import TokenVault

log = logging.getLogger(__name__)

RELEASE_HEADER = "zoneapp-release-id"
MASK = "[masked:{}]"
#: Pending requests one officer may have open at a time, and one source zone: a request
#: is a human's work for a second human, and each one is kept, listed and audited.
MAX_OPEN_PER_OFFICER = 20
MAX_OPEN_PER_ZONE = 100
#: Releases per page of ``GET /releases`` (default, most).
PAGE = 50
MAX_PAGE = 500
#: What the audit says for a boundary the caller named that the policy does not have.
UNKNOWN = "(unknown)"
#: Seconds between two purges of old rows.
PURGE_EVERY = 60.0
#: States a release holds its records in: another release of them is refused.
HOLDING = (APPROVED, RELEASING)


class ReleaseStore(Protocol):
    """Where release rows live: a Faust table in a worker (``zoneapp.tables.releases``)."""

    def get(self, release_id: str) -> Mapping[str, Any] | None: ...

    def rows(self) -> Iterable[Mapping[str, Any]]: ...

    def size(self) -> int:
        """How many rows there are (cheap: the released-ids index is rebuilt when it moves)."""
        ...

    async def put(self, row: dict[str, Any]) -> None: ...

    async def delete(self, release_id: str) -> None: ...

    def serving(self) -> bool:
        """True when this process keeps the rows (the active owner of their partition)."""
        ...

    def owner(self) -> str | None:
        """The web URL of the worker that keeps them, when another one does."""
        ...


@dataclass
class MemoryReleaseStore:
    """Rows in a dict (in-process tests and tools)."""

    data: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, release_id: str) -> Mapping[str, Any] | None:
        return self.data.get(release_id)

    def rows(self) -> Iterable[Mapping[str, Any]]:
        return list(self.data.values())

    def size(self) -> int:
        return len(self.data)

    async def put(self, row: dict[str, Any]) -> None:
        self.data[str(row["id"])] = row

    async def delete(self, release_id: str) -> None:
        self.data.pop(release_id, None)

    def serving(self) -> bool:
        return True

    def owner(self) -> str | None:
        return None


class ReleaseSink:
    """Forwards to the destination with the release header; swallows re-quarantines
    (the original stays in the quarantine topic; the release row says why)."""

    def __init__(self, sink: Sink, destination: str, release_id: str) -> None:
        self.sink = sink
        self.destination = destination
        self.release_id = release_id.encode()
        self.forwarded = 0

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp_ms: int | None,
    ) -> None:
        if topic != self.destination:
            return
        self.forwarded += 1
        await self.sink.send(
            topic, key, value, [*headers, (RELEASE_HEADER, self.release_id)], timestamp_ms
        )


def problems_of(outcome: Quarantine) -> list[dict[str, Any]]:
    return [
        {"reason": p.reason, "field_path": p.path, "detector": p.detector, "detail": p.detail}
        for p in outcome.problems
    ]


class ReleaseService:
    """File, approve, run and show releases (module docstring)."""

    def __init__(
        self,
        policy: CompiledPolicy | Callable[[], CompiledPolicy],
        *,
        store: ReleaseStore,
        quarantine: QuarantineSource,
        sink: Sink,
        keyring: Callable[[], KeyRing],
        vault: Callable[[], TokenVault],
        audit: AuditSink,
        ttl: float,
        open_keys: Callable[[], Awaitable[None]] | None = None,
        flush: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        boundaries: Iterable[str] | None = None,
        retention: float = 30 * 86_400.0,
    ) -> None:
        # A getter follows the runtime's current policy (a reload), a policy stays fixed.
        self._policy = policy if callable(policy) else (lambda: policy)
        self.store = store
        self.quarantine = quarantine
        self.sink = sink
        self._keyring = keyring
        self._vault = vault
        self.audit = audit
        self.book = ReleaseBook(ttl, clock)
        self.clock = clock
        self._open_keys = open_keys
        self._flush = flush
        #: Boundaries this worker runs: only their records can be released here.
        self.boundaries = set(boundaries) if boundaries is not None else None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        #: Seconds a done or expired release is kept before it is purged.
        self.retention = retention
        self._purged_at = float("-inf")
        # violation id -> the release holding or having released it (see _held).
        self._index: dict[str, dict[str, str]] = {}
        self._index_size = -1

    @property
    def policy(self) -> CompiledPolicy:
        return self._policy()

    # -- reading -----------------------------------------------------------------------

    def get(self, release_id: str) -> Release | None:
        row = self.store.get(release_id)
        if row is None:
            return None
        try:
            return Release.from_row(row)
        except (ValueError, KeyError, TypeError, ReleaseError):
            log.warning("releases: unreadable row %s", release_id[:64])
            return None

    def all(self) -> list[Release]:
        found = []
        for row in self.store.rows():
            try:
                found.append(Release.from_row(row))
            except (ValueError, KeyError, TypeError, ReleaseError):
                continue
        return sorted(found, key=lambda r: r.requested_at, reverse=True)

    def page(self, zones: Iterable[str] | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """Releases of ``zones`` (None: every zone), newest first, ``limit`` at a time;
        ``cursor`` is the ``next_cursor`` of the page before."""
        wanted = None if zones is None else set(zones)
        items = [r for r in self.all() if wanted is None or r.zone in wanted]
        start = 0
        if cursor is not None:
            ids = [r.id for r in items]
            start = ids.index(cursor) + 1 if cursor in ids else len(items)
        chunk = items[start : start + limit]
        more = start + limit < len(items)
        return {"items": chunk, "next_cursor": chunk[-1].id if more and chunk else None}

    def _rows_index(self) -> dict[str, dict[str, str]]:
        """violation id -> {state: release id} of the releases that released it (``done``)
        or hold it (approved, releasing). Kept as rows are written here; rebuilt from the
        store when its size moves (recovery from the changelog, another worker's rows)."""
        if self.store.size() != self._index_size:
            self._index = {}
            for release in self.all():
                self._note(release)
            self._index_size = self.store.size()
        return self._index

    def _note(self, release: Release) -> None:
        for vid in release.violation_ids:
            held = self._index.get(vid)
            if held is not None and release.id in held.values():
                self._index[vid] = held = {k: v for k, v in held.items() if v != release.id}
            if release.state in HOLDING:
                self._index.setdefault(vid, {})[release.state] = release.id
            elif (
                release.state == DONE
                and (release.results.get(vid) or {}).get("outcome") == RELEASED
            ):
                self._index.setdefault(vid, {}).setdefault(DONE, release.id)
            if vid in self._index and not self._index[vid]:
                del self._index[vid]

    async def _put(self, release: Release) -> None:
        current = self.store.size() == self._index_size
        await self.store.put(release.to_row())
        if current:  # else the next look rebuilds it, this row included
            self._note(release)
            self._index_size = self.store.size()

    def released_ids(self) -> dict[str, str]:
        """violation id -> the done release that released it."""
        return {v: held[DONE] for v, held in self._rows_index().items() if DONE in held}

    def _held(self, release: Release | None, ids: Iterable[str]) -> bool:
        """True when a listed record was released, or is held by another approved or
        running release (two requests for one record: only the first one to run)."""
        index = self._rows_index()
        mine = None if release is None else release.id
        for vid in ids:
            for state, rid in (index.get(vid) or {}).items():
                if rid != mine and (state == DONE or release is not None):
                    return True
        return False

    async def purge(self) -> int:
        """Delete done and expired releases older than the retention (once a minute at
        most; the worker's timer calls it). Their audit events stay in ``audit.access``."""
        now = self.clock()
        if now - self._purged_at < PURGE_EVERY or not self.store.serving():
            return 0
        self._purged_at = now
        cutoff = now - self.retention
        old = [
            r.id
            for r in self.all()
            if (r.state == DONE and (r.finished_at or r.requested_at) < cutoff)
            or (r.state_at(now) == EXPIRED and r.expires_at < cutoff)
        ]
        for rid in old:
            async with self._lock:
                await self.store.delete(rid)
        if old:
            self._index_size = -1
            log.info("releases: purged %d done or expired releases", len(old))
        return len(old)

    def _open_requests(self, officer: Officer, zone: str) -> None:
        now = self.clock()
        mine = by_zone = 0
        for r in self.all():
            if r.state_at(now) != PENDING:
                continue
            by_zone += r.zone == zone
            mine += r.requester_identity == officer.identity
        if mine >= MAX_OPEN_PER_OFFICER:
            raise ReleaseError(
                "too_many_open", f"at most {MAX_OPEN_PER_OFFICER} open requests per officer"
            )
        if by_zone >= MAX_OPEN_PER_ZONE:
            raise ReleaseError(
                "too_many_open", f"at most {MAX_OPEN_PER_ZONE} open requests per zone"
            )

    def lookup(self, name: str) -> CompiledBoundary | None:
        """The boundary ``name`` names here, or None (no error: the caller checks roles)."""
        try:
            return self.boundary(name)
        except ReleaseError:
            return None

    def boundary(self, name: str) -> CompiledBoundary:
        if self.boundaries is not None and name not in self.boundaries:
            raise ReleaseError("unknown_boundary", "this worker does not run that boundary")
        try:
            return self.policy.boundary(name)
        except KeyError:
            raise ReleaseError("unknown_boundary", "no such boundary") from None

    # -- audit -------------------------------------------------------------------------

    async def _audit(self, who: str, action: str, zone: str | None, outcome: str, **f: Any) -> None:
        try:
            await self.audit.write(
                audit_event(who=who, action=action, zone=zone, tenant=None, outcome=outcome, **f)
            )
        except Exception as exc:
            log.error("release: audit write failed: %s", type(exc).__name__)
            raise ReleaseError("audit_unavailable", "the audit topic cannot be written") from None

    # -- steps -------------------------------------------------------------------------

    async def request(
        self,
        officer: Officer,
        *,
        boundary: str,
        events: Sequence[Mapping[str, Any]],
        exception: ReleaseException,
        reason: str,
        filter: Mapping[str, Any] | None = None,
    ) -> Release:
        """File a request for the quarantined records of ``events`` (violation events)."""
        found = self.lookup(boundary)
        zone = _asked_zone(officer, found)
        # Only a policy boundary's name goes into the audit, never the caller's text.
        named = found.name if found is not None else UNKNOWN
        try:
            b = _officers_boundary(officer, found)
            if any(e.get("boundary") != boundary for e in events):
                raise ReleaseError("wrong_boundary", "a listed record is of another boundary")
            # The caller's text is scanned before any refusal could quote it.
            self._no_values(reason, exception, filter)
            with_exception(self.policy, b, exception)  # refused now, not at approval
            ids = [str(e["id"]) for e in events]
            if self._held(None, ids):
                raise ReleaseError("already_released", "a listed record was released already")
            self._open_requests(officer, b.source_zone.name)
            release = self.book.file(
                officer,
                boundary=boundary,
                zone=b.source_zone.name,
                violation_ids=ids,
                exception=exception,
                reason=reason,
                filter=filter,
            )
        except ReleaseError as exc:
            if exc.code != "audit_unavailable":
                await self._audit(officer.name, "release.request", zone, f"refused:{exc.code}",
                                  boundary=named)  # fmt: skip
            raise
        await self._audit(
            officer.name,
            "release.request",
            zone,
            "allowed",
            release_id=release.id,
            boundary=named,
            records=len(release.violation_ids),
            exception=exception.kind,
        )
        await self._put(release)
        return release

    def _no_values(
        self, reason: str, exception: ReleaseException, filter: Mapping[str, Any] | None
    ) -> None:
        """The request's own text goes into the table, its changelog and every answer:
        refused if a DLP detector flags any of it (an officer pasting a card number)."""
        texts = [reason, orjson.dumps(exception.to_json()).decode()]
        if filter is not None:
            texts.append(orjson.dumps(dict(filter)).decode())
        if any(self.policy.scanner.scan_text(t) for t in texts if isinstance(t, str)):
            raise ReleaseError(
                "bad_request", "the request holds text a DLP detector flags; leave values out"
            )

    async def approve(self, release_id: str, officer: Officer) -> Release:
        """The second officer's approval; the release then runs in the background."""
        async with self._lock:
            release = self.get(release_id)
            if release is None:
                raise ReleaseError("unknown_release", "no such release")
            try:
                self.book.approve(release, officer)
                if self._held(release, release.violation_ids):
                    release.state, release.approved_by, release.approved_at = PENDING, None, None
                    raise ReleaseError(
                        "already_released",
                        "a listed record was released, or is being released, by another release",
                    )
            except ReleaseError as exc:
                await self._audit(officer.name, "release.approve", release.zone,
                                  f"refused:{exc.code}", release_id=release.id)  # fmt: skip
                if exc.code == "expired":
                    await self._put(release)
                raise
            await self._audit(
                officer.name, "release.approve", release.zone, "allowed", release_id=release.id
            )
            await self._put(release)
        self._spawn(release.id)
        return release

    def _spawn(self, release_id: str) -> None:
        if release_id in self._running:
            return
        self._running.add(release_id)
        task = asyncio.create_task(self.run(release_id))
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._running.discard(release_id)

        task.add_done_callback(done)

    async def wait_idle(self) -> None:
        """Until every running release finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def resume(self) -> int:
        """Run again the releases approved but not done (after a restart, or a run that
        failed); the worker calls it every few seconds while it keeps the releases."""
        todo = [
            r.id
            for r in self.all()
            if r.state in (APPROVED, RELEASING) and r.id not in self._running
        ]
        for rid in todo:
            self._spawn(rid)
        return len(todo)

    async def run(self, release_id: str) -> None:
        """Re-run the boundary on the listed records with the exception (module docstring)."""
        try:
            await self._run(release_id)
        except ReleaseError as exc:  # it can never run (the policy changed): done, nothing out
            log.error("release %s refused: %s", release_id[:64], exc.code)
            await self._refuse(release_id, exc)
        except Exception as exc:  # stays approved/releasing: resumed by the worker's timer
            log.error("release %s failed: %s", release_id[:64], type(exc).__name__)

    async def _refuse(self, release_id: str, exc: ReleaseError) -> None:
        async with self._lock:
            release = self.get(release_id)
            if release is None or release.state != RELEASING:
                return
            problem = {
                "reason": "release_refused",
                "field_path": "$value",
                "detector": None,
                "detail": exc.code,
            }
            results = {
                vid: {"outcome": STILL_QUARANTINED, "problems": [problem]}
                for vid in release.violation_ids
            }
            self.book.finish(release, results)
            await self._audit(
                release.approved_by or "unknown",
                "release.run",
                release.zone,
                f"refused:{exc.code}",
                release_id=release.id,
            )
            await self._put(release)

    async def _run(self, release_id: str) -> None:
        async with self._lock:
            release = self.get(release_id)
            if release is None or release.state not in (APPROVED, RELEASING):
                return
            self.book.start(release)
            await self._put(release)
            if self._held(release, release.violation_ids):  # refused, done: nothing out
                raise ReleaseError("already_released", "another release took a listed record")
        boundary = self.boundary(release.boundary)
        variant = without_rate_limit(with_exception(self.policy, boundary, release.exception))
        found = await self.quarantine.find(
            boundary.source_zone.quarantine_topic, release.violation_ids
        )
        found = {v: q for v, q in found.items() if bound(q, boundary.name, None)}
        listed = [vid for vid in release.violation_ids if vid in found]
        records = [found[vid].record for vid in listed]
        results: dict[str, dict[str, Any]] = {
            vid: {"outcome": NOT_FOUND} for vid in release.violation_ids if vid not in found
        }
        if records:
            sink = ReleaseSink(self.sink, variant.destination, release.id)
            guard = BoundaryGuard(
                self.policy,
                variant,
                self._keyring(),
                self._vault(),
                sink,
                BoundaryStats(
                    variant.name, variant.source_zone.name, variant.destination_zone.name
                ),
                open_keys=self._open_keys,
            )
            outcomes = await guard.handle(records)
            if self._flush is not None:
                await self._flush()
            for vid, outcome in zip(listed, outcomes, strict=True):
                rid = found[vid].record.record_id
                if isinstance(outcome, Forward):
                    results[vid] = {"outcome": RELEASED, "record_id": rid}
                else:
                    results[vid] = {
                        "outcome": STILL_QUARANTINED,
                        "record_id": rid,
                        "problems": problems_of(outcome),
                    }
        async with self._lock:
            self.book.finish(release, results)
            counts = release.counts()
            await self._audit(
                release.approved_by or "unknown",
                "release.run",
                release.zone,
                "done",
                release_id=release.id,
                released=counts[RELEASED],
                still_quarantined=counts[STILL_QUARANTINED],
                not_found=counts[NOT_FOUND],
            )
            await self._put(release)
        log.info(
            "release %s: %d released, %d still quarantined, %d not found",
            release.id,
            counts[RELEASED],
            counts[STILL_QUARANTINED],
            counts[NOT_FOUND],
        )

    # -- preview -----------------------------------------------------------------------

    async def preview(self, officer: Officer, event: Mapping[str, Any]) -> dict[str, Any]:
        """The record as the boundary would forward it, every value a detector flags
        masked (``[masked:DETECTOR]``); or, when it cannot be forwarded for another
        reason, only its problems. For zone-wide officers of the source zone; audited."""
        vid = str(event.get("id"))
        named = self.lookup(str(event.get("boundary")))
        zone = _asked_zone(officer, named)
        try:
            boundary = _officers_boundary(officer, named)
            found = await self.quarantine.find(boundary.source_zone.quarantine_topic, [vid])
            if vid in found and not bound(found[vid], boundary.name, event):
                del found[vid]  # a copy that is not the violation's record: never shown
            if vid not in found:
                raise ReleaseError("not_found", "the record is no longer in the quarantine topic")
        except ReleaseError as exc:
            if exc.code != "audit_unavailable":
                await self._audit(officer.name, "release.preview", zone, f"refused:{exc.code}",
                                  violation_id=vid)  # fmt: skip
            raise
        await self._audit(officer.name, "release.preview", zone, "allowed", violation_id=vid)
        return await self._preview(boundary, found[vid])

    async def _preview(self, boundary: CompiledBoundary, quarantined: Any) -> dict[str, Any]:
        keyring = self._keyring()
        if self._open_keys is not None:
            await self._open_keys()
        allowed = set(boundary.allowed)
        record = quarantined.record
        for _ in range(8):
            variant = with_allowed(boundary, allowed)
            sanitizer = BoundarySanitizer(self.policy, variant)
            for zone, purpose in sorted(sanitizer.hmac_purposes()):
                keyring.require_hmac(zone, purpose)
            await keyring.prepare()
            try:
                outcome = sanitizer.sanitize(record, keyring)
            except Exception as exc:
                log.warning("release preview: %s", type(exc).__name__)
                return {"violation_id": quarantined.violation_id, "forwardable": False,
                        "problems": [{"reason": "internal_error", "field_path": "$value",
                                      "detector": None, "detail": type(exc).__name__}]}  # fmt: skip
            if isinstance(outcome, Forward):
                return {
                    "violation_id": quarantined.violation_id,
                    "record_id": record.record_id,
                    "forwardable": True,
                    "destination": boundary.destination,
                    "record": self._masked(outcome),
                }
            dlp = [(p.path, p.detector) for p in outcome.problems if p.reason == "dlp"]
            if len(dlp) != len(outcome.problems) or not dlp:
                break
            allowed.update((path, det) for path, det in dlp if det is not None)
        return {
            "violation_id": quarantined.violation_id,
            "record_id": record.record_id,
            "forwardable": False,
            "problems": problems_of(outcome) if isinstance(outcome, Quarantine) else [],
        }

    def _masked(self, outcome: Forward) -> dict[str, Any]:
        """The output with every place the boundary's own scan flags masked (see
        :class:`PreviewMask`); everything masked when that cannot be done surely."""
        headers = [
            (name, raw.decode("utf-8", "replace"))
            for name, raw in outcome.headers
            if not name.lower().startswith("zoneapp-")
        ]
        try:
            key = None if outcome.key is None else orjson.loads(outcome.key)
            value = None if outcome.value is None else orjson.loads(outcome.value)
            return PreviewMask(self.policy.scanner).apply(key, value, headers)
        except Exception as exc:  # fail closed: nothing of the record is shown
            log.warning("release preview: masking failed (%s); all masked", type(exc).__name__)
            return {
                "key": None if outcome.key is None else MASK.format("ALL"),
                "value": None if outcome.value is None else MASK.format("ALL"),
                "headers": [[name, MASK.format("ALL")] for name, _ in headers],
            }


class PreviewMask:
    """Masks a would-be output the way the boundary scans it.

    The sanitizer scans ``(path, text)`` pairs: concrete field paths (``emp.ssn``,
    ``tags[0][0]``, ``$key``, ``$headers.name``), field names under the path they name,
    and the joined views of an array's adjacent short scalars under ``path[]``. The same
    pairs are built from the output here (a superset: every field name, small numbers,
    floats in both spellings) and scanned with the scanner's ``scan``, so path-context
    detectors (a bare 9-digit SSN at ``emp.ssn``) and split values flag where the
    boundary flagged them. Each flagged path is masked whole (``[masked:DETECTOR]``), a
    flagged field name is replaced, a joined ``path[]`` hit masks every item of the
    array. A finding this walk cannot place raises, and the caller masks everything.
    """

    def __init__(self, scanner: Any) -> None:
        self.scanner = scanner
        self.values: list[tuple[str, str]] = []
        self.names: list[tuple[str, str]] = []
        #: path -> every (container, slot) holding a value at that path.
        self.slots: dict[str, list[tuple[Any, Any]]] = {}

    def apply(self, key: Any, value: Any, headers: Sequence[tuple[str, str]]) -> dict[str, Any]:
        root: dict[str, Any] = {"key": key, "value": value}
        if key is not None:
            self._walk(root, "key", "$key")
        if value is not None:
            self._walk(root, "value", "")
        rows = [[name, text] for name, text in headers]
        for row in rows:
            path = f"$headers.{row[0].lower()}"
            self.slots.setdefault(path, []).append((row, 1))
            self.values.append((path, row[1]))
        scan = self.scanner.scan
        by_value = {(f.path, f.detector) for f in scan(self.values)}
        by_name = {(f.path, f.detector) for f in scan(self.names)}
        both = {(f.path, f.detector) for f in scan([*self.values, *self.names])}
        # A hit only the joint scan finds cannot be told apart: value and name masked.
        unsure = both - by_value - by_name
        for path, detector in sorted(by_value | unsure):
            if path.endswith("[]"):
                for container, slot in self._at(path[:-2]):
                    items = container[slot]
                    if not isinstance(items, list):
                        raise LookupError("a joined hit off an array")
                    container[slot] = [MASK.format(detector) for _ in items]
            else:
                for container, slot in self._at(path):
                    container[slot] = MASK.format(detector)
        for path, detector in sorted(by_name | unsure):
            for container, slot in self._at(path):
                if not isinstance(container, dict):
                    raise LookupError("a field name off an object")
                if slot not in container:
                    continue  # renamed already (a second detector on the same name)
                masked, n = MASK.format(detector), 1
                while masked in container:
                    n += 1
                    masked = f"{MASK.format(detector)}#{n}"
                container[masked] = container.pop(slot)
        return {"key": root["key"], "value": root["value"], "headers": rows}

    def _at(self, path: str) -> list[tuple[Any, Any]]:
        slots = self.slots.get(path)
        if not slots:
            raise LookupError("a finding at a path the walk did not see")
        return slots

    def _walk(self, container: Any, slot: Any, path: str) -> None:
        self.slots.setdefault(path, []).append((container, slot))
        value = container[slot]
        if isinstance(value, str):
            self.values.append((path, value))
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int):
            self.values.append((path, str(value)))
        elif isinstance(value, float):
            self.values.append((path, repr(value).replace(".", ";")))
            self.values.append((path, repr(value)))
        elif isinstance(value, dict):
            for name in list(value):
                child = f"{path}.{name}" if path else str(name)
                self.names.append((child, str(name)))
                self._walk(value, name, child)
        elif isinstance(value, list):
            for i in range(len(value)):
                self._walk(value, i, f"{path}[{i}]")
            if len(value) > 1:
                self.values.extend((f"{path}[]", view) for view in joined_views(value))
        else:
            raise TypeError("not a JSON value")


def bound(quarantined: Any, boundary: str, event: Mapping[str, Any] | None) -> bool:
    """The quarantined copy is the violation's record: its boundary, and (given the
    violation event) the source place the event recorded."""
    if quarantined.boundary != boundary:
        return False
    if event is None:
        return True
    source = event.get("source") or {}
    record = quarantined.record
    return (source.get("topic"), source.get("partition"), source.get("offset")) == (
        record.topic,
        record.partition,
        record.offset,
    )


def without_rate_limit(boundary: CompiledBoundary) -> CompiledBoundary:
    """The boundary without its ingress rate limit (its schema checks stay): a release is
    a human decision over records that were counted once already, and ``rate_limited``
    records would otherwise be limited again, as one burst."""
    ingress = boundary.ingress
    if ingress is None or ingress.rate_limit is None:
        return boundary
    return dataclasses.replace(boundary, ingress=dataclasses.replace(ingress, rate_limit=None))


def with_allowed(boundary: CompiledBoundary, allowed: set[tuple[str, str]]) -> CompiledBoundary:
    return dataclasses.replace(boundary, allowed=frozenset(allowed))


def _asked_zone(officer: Officer, found: CompiledBoundary | None) -> str | None:
    """The zone a request or preview is audited under: the boundary's source zone once the
    caller holds some zone-wide officer role and the boundary exists, else None."""
    return found.source_zone.name if officer.zones and found is not None else None


def _officers_boundary(officer: Officer, found: CompiledBoundary | None) -> CompiledBoundary:
    """``found``, for a zone-wide officer of its source zone. The role is checked first: an
    officer of no zone is told nothing, not even whether the boundary exists."""
    if not officer.zones:
        raise ReleaseError("forbidden", "needs a zone-wide officer role of the source zone")
    if found is None:
        raise ReleaseError("unknown_boundary", "no such boundary on this worker")
    if found.source_zone.name not in officer.zones:
        raise ReleaseError("forbidden", "needs a zone-wide officer role of the source zone")
    return found
