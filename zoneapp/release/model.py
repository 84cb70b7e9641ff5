"""Release requests and their state machine: the two-person rule, expiry, outcomes.

Pure (no I/O, an injectable clock), so every transition is unit-tested without a broker.

A release moves ``pending -> approved -> releasing -> done`` (or ``pending -> expired``):

* **filed** by an officer of the boundary's source zone, for a fixed list of quarantined
  records (violation ids; a filter is resolved to its list when the request is filed, so
  the approver approves exactly what is listed and nothing quarantined later), with a
  reason and one explicit exception (:class:`ReleaseException`);
* **approved** by a second officer of that zone who is not the requester: principals are
  compared by :func:`identity` (the key entry's ``person``, else its name; Unicode NFKC,
  case-folded, letters and digits only), so neither a second key of the same person nor a
  case or punctuation variant of a name counts as a second officer;
* **expired** when not approved within its time to live: an expired request can never be
  approved; a new one must be filed;
* **done** once the worker re-ran the boundary on each record: per record ``released``,
  ``quarantined`` (it still fails; the problems say why, never a value) or ``not_found``.

Errors are :class:`ReleaseError` with a machine-readable ``code`` and a fixed message
(never a value, never the caller's text).
"""

from __future__ import annotations

import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PENDING = "pending"
APPROVED = "approved"
RELEASING = "releasing"
DONE = "done"
EXPIRED = "expired"
STATES = (PENDING, APPROVED, RELEASING, DONE, EXPIRED)

#: Per-record outcomes of a done release.
RELEASED = "released"
STILL_QUARANTINED = "quarantined"
NOT_FOUND = "not_found"

#: Most records one request may name.
MAX_RECORDS = 500
#: Longest reason text kept.
MAX_REASON_CHARS = 1000
#: Versioned row format of the releases table.
ROW_VERSION = 1

Clock = Callable[[], float]


class ReleaseError(Exception):
    """A refused step: ``code`` for programs (and the HTTP status), a fixed message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def identity(name: str) -> str:
    """Who a principal is, for the two-person rule: NFKC, case-folded, letters and digits
    only (``Alice``, ``alice``, fullwidth ``ALICE`` and ``a.lice`` are one person)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in folded if c.isalnum())


@dataclass(frozen=True, slots=True)
class Officer:
    """The caller of a release step, as the web layer authenticated it."""

    name: str
    #: The key entry's ``person`` (or its name): what :func:`identity` folds.
    person: str
    #: Zones this caller is a zone-wide officer of (tenant-scoped officers are not).
    zones: frozenset[str]

    @property
    def identity(self) -> str:
        return identity(self.person or self.name)


TRANSFORMS_ALLOWED = ("encrypt", "generalize", "hash", "mask", "suppress", "tokenize")


@dataclass(frozen=True, slots=True)
class ReleaseException:
    """What the release lets through that the policy does not.

    ``allow``: the DLP detector ``detector`` is let through at ``path`` (a place as a
    violation names it, e.g. ``notes``). ``transform``: the field at ``path`` is given
    the transform ``transform`` (a sanitizing one, never ``keep``) with ``params``.
    Everything else of the policy still applies.
    """

    kind: str
    path: str
    detector: str | None = None
    transform: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> ReleaseException:
        """``{"allow": {"detector", "path"}}`` or ``{"transform": {"name", "path", "params"}}``."""
        if not isinstance(data, Mapping) or len(data) != 1:
            raise ReleaseError(
                "bad_request", "exception: one of {'allow': ...} or {'transform': ...}"
            )
        kind, body = next(iter(data.items()))
        if kind not in ("allow", "transform") or not isinstance(body, Mapping):
            raise ReleaseError(
                "bad_request", "exception: one of {'allow': ...} or {'transform': ...}"
            )
        path = body.get("path")
        if not isinstance(path, str) or not path or len(path) > 256 or not path.isprintable():
            raise ReleaseError("bad_request", "exception.path: a field path")
        if kind == "allow":
            detector = body.get("detector")
            if not isinstance(detector, str) or not detector.isidentifier():
                raise ReleaseError("bad_request", "exception.allow.detector: a detector name")
            return cls("allow", path, detector=detector)
        name = body.get("name")
        if name not in TRANSFORMS_ALLOWED:
            raise ReleaseError(
                "bad_request",
                f"exception.transform.name: one of {', '.join(TRANSFORMS_ALLOWED)}",
            )
        params = body.get("params", {})
        if not isinstance(params, Mapping):
            raise ReleaseError("bad_request", "exception.transform.params: an object")
        return cls("transform", path, transform=str(name), params=dict(params))

    def to_json(self) -> dict[str, Any]:
        if self.kind == "allow":
            return {"allow": {"detector": self.detector, "path": self.path}}
        return {"transform": {"name": self.transform, "path": self.path, "params": self.params}}


@dataclass(slots=True)
class Release:
    """One release request and what became of it (a row of the releases table)."""

    id: str
    boundary: str
    zone: str
    violation_ids: tuple[str, ...]
    exception: ReleaseException
    reason: str
    requested_by: str
    requester_identity: str
    requested_at: float
    expires_at: float
    state: str = PENDING
    approved_by: str | None = None
    approved_at: float | None = None
    finished_at: float | None = None
    #: The filter the list was resolved from, as filed (None: named records).
    filter: Mapping[str, Any] | None = None
    #: violation id -> {"outcome", "record_id", "problems"} once done.
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        return {
            "v": ROW_VERSION,
            "id": self.id,
            "boundary": self.boundary,
            "zone": self.zone,
            "violation_ids": list(self.violation_ids),
            "exception": self.exception.to_json(),
            "reason": self.reason,
            "requested_by": self.requested_by,
            "requester_identity": self.requester_identity,
            "requested_at": self.requested_at,
            "expires_at": self.expires_at,
            "state": self.state,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
            "finished_at": self.finished_at,
            "filter": dict(self.filter) if self.filter is not None else None,
            "results": self.results,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Release:
        if row.get("v") != ROW_VERSION:
            raise ValueError("unknown release row version")
        return cls(
            id=str(row["id"]),
            boundary=str(row["boundary"]),
            zone=str(row["zone"]),
            violation_ids=tuple(str(v) for v in row["violation_ids"]),
            exception=ReleaseException.from_json(row["exception"]),
            reason=str(row["reason"]),
            requested_by=str(row["requested_by"]),
            requester_identity=str(row["requester_identity"]),
            requested_at=float(row["requested_at"]),
            expires_at=float(row["expires_at"]),
            state=str(row["state"]),
            approved_by=row.get("approved_by"),
            approved_at=row.get("approved_at"),
            finished_at=row.get("finished_at"),
            filter=row.get("filter"),
            results=dict(row.get("results") or {}),
        )

    def counts(self) -> dict[str, int]:
        out = {RELEASED: 0, STILL_QUARANTINED: 0, NOT_FOUND: 0}
        for result in self.results.values():
            out[str(result.get("outcome"))] = out.get(str(result.get("outcome")), 0) + 1
        return out

    def as_json(self, now: float) -> dict[str, Any]:
        """What the API answers: the row, with the state as of ``now`` and counts."""
        body = self.to_row()
        del body["v"], body["requester_identity"]
        body["state"] = self.state_at(now)
        body["counts"] = self.counts()
        return body

    def state_at(self, now: float) -> str:
        return EXPIRED if self.state == PENDING and now >= self.expires_at else self.state


class ReleaseBook:
    """The transitions, checked (module docstring); rows are kept by the caller."""

    def __init__(self, ttl: float, clock: Clock = time.time) -> None:
        if ttl <= 0:
            raise ValueError("a release request needs a positive time to live")
        self.ttl = ttl
        self.clock = clock

    def file(
        self,
        officer: Officer,
        *,
        boundary: str,
        zone: str,
        violation_ids: Iterable[str],
        exception: ReleaseException,
        reason: str,
        filter: Mapping[str, Any] | None = None,
    ) -> Release:
        if zone not in officer.zones:
            raise ReleaseError("forbidden", "needs a zone-wide officer role of the source zone")
        ids = tuple(dict.fromkeys(violation_ids))
        if not ids:
            raise ReleaseError("no_records", "no quarantined record matches")
        if len(ids) > MAX_RECORDS:
            raise ReleaseError("too_many", f"at most {MAX_RECORDS} records per request")
        reason = reason.strip() if isinstance(reason, str) else ""
        if not reason or len(reason) > MAX_REASON_CHARS:
            raise ReleaseError("bad_request", f"reason: 1 to {MAX_REASON_CHARS} characters")
        now = self.clock()
        return Release(
            id=str(uuid.uuid4()),
            boundary=boundary,
            zone=zone,
            violation_ids=ids,
            exception=exception,
            reason=reason,
            requested_by=officer.name,
            requester_identity=officer.identity,
            requested_at=now,
            expires_at=now + self.ttl,
            filter=filter,
        )

    def approve(self, release: Release, officer: Officer) -> Release:
        """The second officer's approval; the release is then ``approved`` (to run)."""
        if release.zone not in officer.zones:
            raise ReleaseError("forbidden", "needs a zone-wide officer role of the source zone")
        now = self.clock()
        state = release.state_at(now)
        if state == EXPIRED:
            release.state = EXPIRED
            raise ReleaseError("expired", "the request expired; file a new one")
        if state != PENDING:
            raise ReleaseError("not_pending", "the request is not waiting for approval")
        if officer.identity == release.requester_identity or not officer.identity:
            raise ReleaseError(
                "same_officer", "the approver must be another officer than the requester"
            )
        release.state = APPROVED
        release.approved_by = officer.name
        release.approved_at = now
        return release

    def start(self, release: Release) -> Release:
        if release.state not in (APPROVED, RELEASING) or release.approved_by is None:
            raise ReleaseError("not_approved", "only an approved request runs")
        release.state = RELEASING
        return release

    def finish(self, release: Release, results: Mapping[str, Mapping[str, Any]]) -> Release:
        if release.state != RELEASING:
            raise ReleaseError("not_running", "the release is not running")
        release.results = {
            vid: dict(results.get(vid) or {"outcome": NOT_FOUND}) for vid in release.violation_ids
        }
        release.state = DONE
        release.finished_at = self.clock()
        return release
