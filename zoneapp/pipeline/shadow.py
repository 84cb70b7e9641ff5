"""Shadow mode: a candidate policy runs beside the active one and produces nothing.

For each batch the active guard has finished, the candidate's sanitizer handles the same
raw records and its outcome is compared with the active one. What is kept is counts and
places, never a value: verdicts (would forward, would quarantine), fields either side
outputs (in policy terms: a key the policy does not name is ``*``, as in violations),
detector hits by place and detector, transform applications.

Decisions:

- **No side effects.** The candidate runs the real sanitizer, whose transforms compute in
  process (tokens and hashes are HMACs under working keys already in memory, ciphertexts
  are sealed with the active data key). What would reach Redis or the HSM is dropped or
  not asked for: the candidate's token mappings are discarded (counted as
  ``vault_writes_skipped``), token collisions are checked only against the worker's
  in-process cache (never Redis), and per-subject keys are never fetched or created, so
  an ``encrypt`` rule runs without the subject layer (its output shape is the same; the
  ciphertext is thrown away). The HSM calls shadow may cause: the derivation of an HMAC
  working key for a purpose only the candidate uses (read-only, once), and, because its
  ciphertexts are sealed with the active data key and count against that key's use
  budget (``dek_max_uses``), a rotation of the data key brought forward (one wrap).
- **It cannot change what crosses.** The shadow runs after the active batch was produced;
  an exception in it is counted (``errors``, ``batches_skipped``) and logged by type only.
- The candidate's ingress schemas are checked (``schema_invalid``); its rate limit is not
  simulated. Records the active policy quarantined as ``token_collision``,
  ``internal_error`` or ``rate_limited`` are ``not_compared``: only the vault or the live
  token buckets know.
- Its cost is a second sanitizer pass per record on the worker's event loop.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from zoneapp.core.ingress import IngressGate
from zoneapp.core.sanitizer import (
    LINEAGE_PREFIX,
    BoundarySanitizer,
    Forward,
    Outcome,
    Parsed,
    Quarantine,
    RawRecord,
)
from zoneapp.keys.envelope import KeyRing
from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy, RuleNode
from zoneapp.policy.ingress import CompiledIngress
from zoneapp.transforms import KnownTokens

log = logging.getLogger(__name__)

#: Active verdicts the candidate cannot reproduce without the vault (see module docstring).
NOT_COMPARED = frozenset({"token_collision", "internal_error", "rate_limited"})


def policy_names(*boundaries: CompiledBoundary) -> frozenset[str]:
    """Every field name the boundaries' policies spell out (rules, derived fields, allow
    lists): only these may appear in a shadow path; any other key is shown as ``*``."""
    names: set[str] = set()

    def walk(node: RuleNode) -> None:
        for key, child in node.children.items():
            names.add(key)
            walk(child)
        for extra in (node.wildcard, node.items):
            if extra is not None:
                walk(extra)

    for b in boundaries:
        walk(b.fields)
        for d in b.derived:
            names.update(d.output)
        for path, _ in b.allowed:
            names.update(p for p in re.split(r"\.|\[\]", path) if p and p != "*")
    return frozenset(names)


def field_places(value: bytes | None, trees: Sequence[RuleNode], names: frozenset[str]) -> set[str]:
    """The places of an output value, in policy terms, down to the rule that produced
    each (a rule on an object covers the whole object)."""
    if value is None:
        return set()
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return set()
    out: set[str] = set()
    if isinstance(doc, dict):
        _walk(doc, tuple(trees), "", names, out)
    return out


def _walk(
    obj: dict[str, Any],
    nodes: tuple[RuleNode | None, ...],
    prefix: str,
    names: frozenset[str],
    out: set[str],
) -> None:
    for key, value in obj.items():
        kids = tuple(None if n is None else (n.children.get(key) or n.wildcard) for n in nodes)
        named = key in names or any(n is not None and key in n.children for n in nodes)
        place = f"{prefix}.{key if named else '*'}" if prefix else (key if named else "*")
        _place(value, kids, place, names, out)


def _place(
    value: Any,
    nodes: tuple[RuleNode | None, ...],
    place: str,
    names: frozenset[str],
    out: set[str],
) -> None:
    leaf = all(k is None for k in nodes) or any(k is not None and k.rule is not None for k in nodes)
    if leaf:
        out.add(place)
    elif isinstance(value, dict) and value:
        _walk(value, nodes, place, names, out)
    elif isinstance(value, list) and value:
        items = tuple(None if k is None else k.items for k in nodes)
        for item in value:
            _place(item, items, place + "[]", names, out)
    else:
        out.add(place)


@dataclass
class ShadowReport:
    """What the candidate did differently on one boundary: counts and places only."""

    boundary: str
    active_sha256: str
    candidate_sha256: str
    since: float
    records: int = 0
    same_verdict: int = 0
    would_forward: int = 0
    would_quarantine: int = 0
    not_compared: int = 0
    errors: int = 0
    batches_skipped: int = 0
    vault_writes_skipped: int = 0
    #: (reason, place, detector) of records only the candidate quarantines.
    quarantine_causes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: (reason, place, detector) of what the active policy quarantined and the candidate lets by.
    forward_despite: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: Places the active policy outputs and the candidate drops, and the other way round.
    would_drop: Counter[str] = field(default_factory=Counter)
    would_keep: Counter[str] = field(default_factory=Counter)
    #: DLP hits by (place, detector): records where each side reported one.
    hits_active: Counter[tuple[str, str]] = field(default_factory=Counter)
    hits_candidate: Counter[tuple[str, str]] = field(default_factory=Counter)
    transforms_active: Counter[str] = field(default_factory=Counter)
    transforms_candidate: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        def causes(counter: Counter[tuple[str, str, str]]) -> list[dict[str, Any]]:
            return [
                {"reason": r, "path": p, "detector": d or None, "records": n}
                for (r, p, d), n in sorted(counter.items())
            ]

        detectors = [
            {
                "path": place,
                "detector": detector,
                "active": self.hits_active[(place, detector)],
                "candidate": self.hits_candidate[(place, detector)],
            }
            for place, detector in sorted(set(self.hits_active) | set(self.hits_candidate))
            if self.hits_active[(place, detector)] != self.hits_candidate[(place, detector)]
        ]
        transforms = {
            verb: {
                "active": self.transforms_active[verb],
                "candidate": self.transforms_candidate[verb],
            }
            for verb in sorted(set(self.transforms_active) | set(self.transforms_candidate))
            if self.transforms_active[verb] != self.transforms_candidate[verb]
        }
        return {
            "boundary": self.boundary,
            "records": self.records,
            "same_verdict": self.same_verdict,
            "would_forward": {
                "records": self.would_forward,
                "despite": causes(self.forward_despite),
            },
            "would_quarantine": {
                "records": self.would_quarantine,
                "because": causes(self.quarantine_causes),
            },
            "fields": {
                "would_drop": dict(sorted(self.would_drop.items())),
                "would_keep": dict(sorted(self.would_keep.items())),
            },
            "detectors": detectors,
            "transforms": transforms,
            "not_compared": self.not_compared,
            "errors": self.errors,
            "batches_skipped": self.batches_skipped,
            "vault_writes_skipped": self.vault_writes_skipped,
        }


def merge_reports(reports: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sum :meth:`ShadowReport.as_json` bodies of several workers, per boundary."""
    merged: dict[str, dict[str, Any]] = {}
    for r in reports:
        name = str(r["boundary"])
        into = merged.get(name)
        if into is None:
            merged[name] = orjson.loads(orjson.dumps(r))
            continue
        for key in ("records", "same_verdict", "not_compared", "errors", "batches_skipped",
                    "vault_writes_skipped"):  # fmt: skip
            into[key] += int(r.get(key, 0))
        for side, listed in (("would_forward", "despite"), ("would_quarantine", "because")):
            into[side]["records"] += int(r[side]["records"])
            rows = {(c["reason"], c["path"], c["detector"]): c for c in into[side][listed]}
            for c in r[side][listed]:
                slot = (c["reason"], c["path"], c["detector"])
                if slot in rows:
                    rows[slot]["records"] += int(c["records"])
                else:
                    rows[slot] = dict(c)
            into[side][listed] = [rows[k] for k in sorted(rows, key=str)]
        for side in ("would_drop", "would_keep"):
            counts = Counter(into["fields"][side])
            counts.update({str(k): int(v) for k, v in r["fields"][side].items()})
            into["fields"][side] = dict(sorted(counts.items()))
        hits = {(d["path"], d["detector"]): d for d in into["detectors"]}
        for d in r["detectors"]:
            hit = (d["path"], d["detector"])
            if hit in hits:
                hits[hit]["active"] += int(d["active"])
                hits[hit]["candidate"] += int(d["candidate"])
            else:
                hits[hit] = dict(d)
        into["detectors"] = [hits[k] for k in sorted(hits)]
        for verb, sides in r["transforms"].items():
            have = into["transforms"].setdefault(verb, {"active": 0, "candidate": 0})
            have["active"] += int(sides["active"])
            have["candidate"] += int(sides["candidate"])
    return [merged[k] for k in sorted(merged)]


def _causes(outcome: Outcome) -> list[tuple[str, str, str]]:
    if isinstance(outcome, Forward):
        return []
    return list(dict.fromkeys((p.reason, p.path, p.detector or "") for p in outcome.problems))


def _hits(outcome: Outcome) -> set[tuple[str, str]]:
    if isinstance(outcome, Forward):
        return set()
    return {(p.path, p.detector) for p in outcome.problems if p.reason == "dlp" and p.detector}


class ShadowBoundary:
    """The candidate's sanitizer for one boundary, beside the active guard."""

    def __init__(
        self,
        active: CompiledBoundary,
        candidate_policy: CompiledPolicy,
        keyring: KeyRing,
    ) -> None:
        self.active = active
        self.candidate = candidate_policy.boundary(active.name)
        self.sanitizer = BoundarySanitizer(candidate_policy, self.candidate)
        # The candidate's schemas are checked; its rate limit is not simulated (its token
        # buckets would be a second budget beside the live one).
        ingress = self.candidate.ingress
        self.schemas = (
            IngressGate(CompiledIngress(ingress.schemas, None))
            if ingress is not None and any(v is not None for v in ingress.schemas.values())
            else None
        )
        self.keyring = keyring
        for zone, purpose in sorted(self.sanitizer.hmac_purposes()):
            keyring.require_hmac(zone, purpose)  # derived (read-only) by the next prepare()
        self.trees = (active.fields, self.candidate.fields)
        self.names = policy_names(active, self.candidate)
        self.header_names = frozenset(active.header_rules) | frozenset(self.candidate.header_rules)
        self._logged: set[str] = set()

    async def observe(
        self,
        report: ShadowReport,
        records: Sequence[RawRecord],
        outcomes: Sequence[Outcome],
        known: KnownTokens,
    ) -> None:
        """Compare the candidate's outcome of each record with the active one."""
        try:
            await self.keyring.prepare()  # steady state: no HSM call
        except Exception as exc:
            report.batches_skipped += 1
            self._log_once(exc)
            return
        for record, active in zip(records, outcomes, strict=True):
            report.records += 1
            if not isinstance(active, Forward) and active.reason in NOT_COMPARED:
                report.not_compared += 1
                continue
            try:
                candidate = self._outcome(record, known)
            except Exception as exc:
                report.errors += 1
                self._log_once(exc)
                continue
            self._compare(report, active, candidate)

    def _outcome(self, record: RawRecord, known: KnownTokens) -> Outcome:
        parsed = self.sanitizer.parse(record, self.keyring)
        if isinstance(parsed, Parsed) and self.schemas is not None:
            parsed = self.schemas.admit([parsed]).items[0]
        if isinstance(parsed, Quarantine):
            return parsed
        assert isinstance(parsed, Parsed)
        return self.sanitizer.finish(parsed, self.keyring, known, {})

    def _compare(self, report: ShadowReport, active: Outcome, candidate: Outcome) -> None:
        report.transforms_active.update(active.applied)
        report.transforms_candidate.update(candidate.applied)
        for hit in _hits(active):
            report.hits_active[hit] += 1
        for hit in _hits(candidate):
            report.hits_candidate[hit] += 1
        if isinstance(candidate, Forward):
            report.vault_writes_skipped += len(candidate.vault_entries)
        fa, fc = isinstance(active, Forward), isinstance(candidate, Forward)
        if fa and fc:
            report.same_verdict += 1
            assert isinstance(active, Forward) and isinstance(candidate, Forward)
            a = self._places(active)
            c = self._places(candidate)
            report.would_drop.update(a - c)
            report.would_keep.update(c - a)
        elif fa:
            report.would_quarantine += 1
            report.quarantine_causes.update(_causes(candidate))
        elif fc:
            report.would_forward += 1
            report.forward_despite.update(_causes(active))
        else:
            report.same_verdict += 1

    def _places(self, outcome: Forward) -> set[str]:
        places = field_places(outcome.value, self.trees, self.names)
        for name, _ in outcome.headers:
            lowered = name.lower()
            if not lowered.startswith(LINEAGE_PREFIX):
                places.add(f"$headers.{lowered if lowered in self.header_names else '*'}")
        if outcome.key is not None:
            places.add("$key")
        return places

    def _log_once(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning("shadow %s: candidate not evaluated (%s)", self.active.name, kind)
