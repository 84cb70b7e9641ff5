"""The flow proof: every path a field can take across the boundaries, and its class at
each hop. ``check-policy`` runs it; nothing here does I/O.

One boundary's rules are checked when the policy loads (``keep`` at or below the
destination, no transform that can reproduce a value above it). That is not enough
across hops: a boundary whose destination topic is another boundary's source hands
the second one values the second one's author may classify lower than the first one
wrote them. The proof follows each field from the boundary it enters at, through
every boundary downstream, and refuses a path where a value of class C reaches a zone
below C without a sanitizing transform.

Class rules (README, "The flow proof"):

- **Entering.** Any boundary's source topic may be written by producers of its zone,
  so every boundary is also a path's first hop. There a field has the highest class
  any boundary *reading that topic* declares for it (``class``; a rule without one
  declares the source zone's level): one value has one class, so a second boundary
  on the same topic cannot call a field public that the first calls restricted. A
  field a ``derive`` reads has the class of the derive rule too. A field no reader
  names has the class of the object or wildcard rule around it, if any (no rule: it
  is dropped). A quarantine, security or audit topic is never a source (it holds
  unsanitized originals or events about them): refused.
- **Arriving.** Downstream, a field has the class the upstream boundary wrote it
  with; when the rule that takes it declares a higher class, that one. A declaration
  lower than what arrives changes nothing: a downstream author cannot relabel data.
- **Leaving.**
  ``keep``, and a transform whose parameters can reproduce the value (see
  ``Transform.reproduces_value``), pass the class on unchanged, and refuse it above
  the destination zone: that is the leak. ``suppress`` outputs nothing. ``mask``,
  ``hash``, ``tokenize``, ``encrypt`` and ``generalize`` sanitize: their output has
  the destination zone's level (sanitized *for that zone*; a lower zone needs another
  sanitizing hop), or the rule's ``output_class`` when the author declares it lower
  (e.g. an age range, public under HIPAA Safe Harbor). A class never rises by a
  transform: the output is at most the input's class.
- **Objects, wildcards and arrays** follow the sanitizer's walk: a rule on an object
  takes everything inside it (each field upstream wrote there keeps its own class,
  so ``keep`` on an object carries its most sensitive member); a named key goes to
  its own rule before ``*``; a field upstream wrote under ``*`` may arrive under any
  name, so it meets every named rule beside the wildcard; ``[]`` meets only ``[]``.
  A field no rule takes is dropped (``unclassified: suppress``) or blocks the record.
- **Derive** reads the source record: any field at, inside or around its ``from``
  path feeds it, with that field's class, and what it outputs is at the derive's
  output path (a field inside ``from`` at the same place inside it), ``keep`` too:
  the next hop meets it there, never at the path it was read from.
- The record key (``$key``) and each named header (``$headers.<name>``) are fields
  too; other producer headers never cross, and the ``zoneapp-*`` lineage headers are
  rewritten at every hop (they name topics and offsets, not record contents).
- **Not in the proof: the trace context.** ``traceparent`` and ``tracestate`` are
  written fresh by the tracing layer at every hop, but not from nothing: with
  ``trace.continue`` (the default) the producer's trace id crosses, 16 bytes the
  producer chose (a random id from its tracing SDK, or anything in 32 hex digits),
  and ``tracestate`` members cross for the vendor keys in ``trace.tracestate_keys``
  (producer text, each DLP-scanned). They are no record field and have no class, so
  the proof cannot weigh them; :func:`trace_crossings` names the boundaries they
  cross and ``check-policy`` prints it. ``trace: {continue: false}`` stops the id.
- A cycle of boundaries is refused: records would circulate forever, and a proof
  over an unbounded path is none.

Field paths in the proof are the policy's own text (rule paths, ``*``, ``[]``), never
record contents.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from zoneapp.policy.compiled import (
    AUDIT_TOPIC,
    ITEMS,
    WILDCARD,
    CompiledBoundary,
    CompiledPolicy,
    CompiledRule,
    RuleNode,
)
from zoneapp.policy.levels import Level

__all__ = [
    "MAX_HOPS",
    "FlowPath",
    "FlowProof",
    "Hop",
    "explain",
    "format_path",
    "prove_flow",
    "refusal",
    "trace_crossings",
]

#: The proof refuses a policy whose paths have more hops than this in all (fail closed
#: rather than run for ever on a policy with very many chained boundaries).
MAX_HOPS = 200_000
KEY = "$key"
HEADERS = "$headers"

Parts = tuple[str, ...]

#: Outcomes of one hop.
KEPT = "kept"
SANITIZED = "sanitized"
SUPPRESSED = "suppressed"
DROPPED = "dropped"
BLOCKED = "blocked"
LEAK = "LEAK"


def format_path(parts: Sequence[str]) -> str:
    """``("items", "[]", "sku")`` -> ``items[].sku`` (the policy's spelling)."""
    out = ""
    for part in parts:
        if part == ITEMS:
            out += ITEMS
        elif part == HEADERS:
            out += HEADERS
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True, slots=True)
class Hop:
    """One boundary a field crosses (or stops at)."""

    boundary: str
    source_zone: str
    destination_zone: str
    destination_level: Level
    #: The field as it arrives here.
    field: str
    #: Its class as it arrives: at the first hop the highest any reader of the topic
    #: declares, after it what the boundary upstream wrote.
    arrives: Level
    #: The class the rule that takes it declares (``class``, else the source zone's).
    declared: Level | None
    #: The rule that takes it (``fields.<path>``, ``derive.<path>``, ``key``,
    #: ``headers.<name>``), or "" when none does.
    rule: str
    transform: str
    #: The output field and its class; None when nothing of it is forwarded.
    output: str | None
    leaves: Level | None
    outcome: str

    @property
    def effective(self) -> Level:
        """The class this hop handles it as: the higher of what arrives and the rule's."""
        return self.arrives if self.declared is None else max(self.arrives, self.declared)


@dataclass(frozen=True, slots=True)
class FlowPath:
    """A field's way from the boundary it enters at to where it stops."""

    topics: tuple[str, ...]
    hops: tuple[Hop, ...]

    @property
    def leak(self) -> Hop | None:
        return next((h for h in self.hops if h.outcome == LEAK), None)


@dataclass(frozen=True, slots=True)
class FlowProof:
    paths: tuple[FlowPath, ...]
    #: Why the policy is refused: one line per leak (or cycle); empty when proven.
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def hop_count(self) -> int:
        return sum(len(p.hops) for p in self.paths)


@dataclass(frozen=True, slots=True)
class _Flow:
    """A field on its way: where it is in the record, and its class."""

    parts: Parts
    level: Level


@dataclass(frozen=True, slots=True)
class _Reach:
    """Where a flow meets one boundary's rules: the rule that takes it (None: no rule),
    the field's full path here, and the path of the rule's node (what a sanitizing
    transform replaces)."""

    rule: CompiledRule | None
    label: str
    parts: Parts
    node_parts: Parts
    outcome: str = ""
    #: Where a kept value lands when not at ``parts`` (a derive's output path).
    out: Parts | None = None


class _TooLarge(Exception):
    pass


def prove_flow(policy: CompiledPolicy) -> FlowProof:
    """Follow every field of every boundary through every boundary downstream."""
    readers: dict[str, list[CompiledBoundary]] = {}
    for b in policy.boundaries:
        for topic in b.sources:
            readers.setdefault(topic, []).append(b)
    prover = _Prover(readers)
    problems = [
        f"boundaries {' -> '.join(cycle)} form a cycle: records would circulate for ever; "
        "a destination topic must not lead back to its own boundary"
        for cycle in _cycles(policy.boundaries, readers)
    ]
    problems += _operational_sources(policy)
    try:
        for b in policy.boundaries:
            # One first hop per source topic (topics whose readers agree share it).
            groups: dict[tuple[_Flow, ...], list[str]] = {}
            for topic in b.sources:
                groups.setdefault(_entering(readers[topic]), []).append(topic)
            for flows, topics in groups.items():
                for flow in flows:
                    prover.follow(b, flow, (), ("|".join(topics),))
    except _TooLarge:
        problems.append(
            f"the policy's boundaries make more than {MAX_HOPS} hops of field paths: "
            "too many to prove; split the policy"
        )
    for number, path in enumerate(prover.paths, 1):
        hop = path.leak
        if hop is not None:
            problems.append(_leak_message(number, path, hop))
    return FlowProof(tuple(prover.paths), tuple(dict.fromkeys(problems)))


def refusal(path: str, proof: FlowProof) -> str:
    """Why a policy file is refused, one line per problem: what ``check-policy`` prints and
    the worker stops with (it never runs a policy the proof refuses)."""
    problems = "\n".join(f"  - {p}" for p in proof.problems)
    return f"{path}: the flow proof refuses the policy:\n{problems}"


def trace_crossings(policy: CompiledPolicy) -> str:
    """What of a producer's trace context crosses which boundaries: outside the proof
    (no class to weigh), so ``check-policy`` states it rather than stay silent."""
    ids = [b.name for b in policy.boundaries if b.trace_policy.continue_trace]
    states = [
        f"{b.name} ({', '.join(sorted(b.trace_policy.tracestate_keys))})"
        for b in policy.boundaries
        if b.trace_policy.tracestate_keys
    ]
    parts = [
        "the producer's trace id (16 producer-chosen bytes) crosses "
        + (", ".join(ids) if ids else "no boundary"),
        "tracestate members (DLP-scanned) cross " + (", ".join(states) if states else "none"),
    ]
    return "trace context, not in the flow proof: " + "; ".join(parts)


def _cycles(
    boundaries: Sequence[CompiledBoundary], readers: dict[str, list[CompiledBoundary]]
) -> list[list[str]]:
    """Cycles of boundaries (a destination read, hop by hop, by the first one again), one
    per loop-closing edge, each starting at its first boundary by name. Found on the
    topics alone: a record circulates even when every field is suppressed on the way."""
    found: dict[tuple[str, ...], list[str]] = {}
    done: set[str] = set()

    def visit(b: CompiledBoundary, stack: list[str]) -> None:
        stack.append(b.name)
        for reader in readers.get(b.destination, []):
            if reader.name in stack:
                loop = stack[stack.index(reader.name) :]
                start = loop.index(min(loop))
                ring = (*loop[start:], *loop[:start])
                found.setdefault(ring, [*ring, ring[0]])
            elif reader.name not in done:
                visit(reader, stack)
        stack.pop()
        done.add(b.name)

    for b in boundaries:
        if b.name not in done:
            visit(b, [])
    return list(found.values())


def _leak_message(number: int, path: FlowPath, hop: Hop) -> str:
    index = path.hops.index(hop)
    chain = " -> ".join(path.topics[: index + 2])
    if index:
        before = path.hops[index - 1]
        how = (
            f"arrives as {hop.arrives}, written by {before.boundary!r} "
            f"({before.transform} {before.rule})"
        )
        fields = [h.field for h in path.hops[:index]]
        if any(f != hop.field for f in fields):
            how += f" from {' -> '.join(fields)}"
    else:
        how = f"is declared {hop.effective} at its first hop"
        if hop.declared is not None and hop.declared < hop.arrives:
            how += f" (the highest class a boundary reading {path.topics[0]} gives it)"
    if hop.declared is not None and hop.declared < hop.arrives:
        how += f"; the rule's class {hop.declared} cannot lower it"
    return (
        f"leak on path {number}, hop {index + 1}, boundary {hop.boundary!r} ({chain}): "
        f"field {hop.field} {how}, and {hop.transform!r} "
        f"({hop.rule}) moves it unsanitized into zone {hop.destination_zone!r} "
        f"({hop.destination_level}); sanitize it at this hop or before it"
    )


def _operational_sources(policy: CompiledPolicy) -> list[str]:
    """A quarantine topic holds originals as they arrived, the security and audit topics
    events about them: no boundary may read one (the loader refuses it too)."""
    special = {z.quarantine_topic: "quarantine" for z in policy.zones.values()}
    special[policy.security_topic] = "security"
    special[AUDIT_TOPIC] = "audit"
    return [
        f"boundary {b.name!r} reads the {special[t]} topic {t!r}: it holds unsanitized "
        "originals or events about them, which no boundary may forward"
        for b in policy.boundaries
        for t in b.sources
        if t in special
    ]


def _entering(readers: Sequence[CompiledBoundary]) -> tuple[_Flow, ...]:
    """The fields a topic's producers may write, each with the highest class any boundary
    reading the topic declares for it: one value has one class, and a reader that calls
    it lower (to keep it into a lower zone) does not get to decide for the others."""
    declared: dict[Parts, Level] = {}

    def declare(parts: Parts, level: Level) -> None:
        declared[parts] = max(declared.get(parts, Level.PUBLIC), level)

    for b in readers:
        declare((KEY,), b.key_rule.level)
        for name, rule in b.header_rules.items():
            declare((HEADERS, name), rule.level)
        for parts, rule in _rules_under(b.fields, ()):
            declare(parts, rule.level)
        for d in b.derived:
            declare(d.source, d.rule.level)
    return tuple(_Flow(parts, level) for parts, level in declared.items())


def _rules_under(node: RuleNode, parts: Parts) -> Iterator[tuple[Parts, CompiledRule]]:
    if node.rule is not None:
        yield parts, node.rule
        return
    for name, child in node.children.items():
        yield from _rules_under(child, (*parts, name))
    if node.wildcard is not None:
        yield from _rules_under(node.wildcard, (*parts, WILDCARD))
    if node.items is not None:
        yield from _rules_under(node.items, (*parts, ITEMS))


class _Prover:
    def __init__(self, readers: dict[str, list[CompiledBoundary]]) -> None:
        self.readers = readers
        self.paths: list[FlowPath] = []
        self.hops = 0

    def follow(
        self,
        b: CompiledBoundary,
        flow: _Flow,
        done: tuple[Hop, ...],
        topics: tuple[str, ...],
    ) -> None:
        if any(h.boundary == b.name for h in done):  # a cycle: refused by _cycles
            self.paths.append(FlowPath(topics, done))
            return
        topics = (*topics, b.destination)
        for hop, out in (self._hop(b, flow, reach) for reach in _reaches(b, flow)):
            self.hops += 1
            if self.hops > MAX_HOPS:
                raise _TooLarge
            path = (*done, hop)
            nxt = self.readers.get(b.destination, []) if out is not None else []
            if out is None or hop.outcome == LEAK or not nxt:
                self.paths.append(FlowPath(topics, path))
                continue
            for reader in nxt:
                self.follow(reader, out, path, topics)

    def _hop(self, b: CompiledBoundary, flow: _Flow, reach: _Reach) -> tuple[Hop, _Flow | None]:
        dest = b.destination_zone
        field = format_path(reach.parts)
        rule = reach.rule
        if rule is None:
            hop = Hop(
                boundary=b.name,
                source_zone=b.source_zone.name,
                destination_zone=dest.name,
                destination_level=dest.level,
                field=field,
                arrives=flow.level,
                declared=None,
                rule="",
                transform="",
                output=None,
                leaves=None,
                outcome=reach.outcome,
            )
            return hop, None
        effective = max(flow.level, rule.level)
        out_parts: Parts
        if rule.name == "suppress":
            outcome, leaves, out_parts = SUPPRESSED, None, ()
        elif rule.is_keep or rule.transform.reproduces_value() is not None:
            leaves = effective
            outcome = KEPT if effective <= dest.level else LEAK
            kept_at = reach.parts if reach.out is None else reach.out
            out_parts = kept_at if rule.is_keep else reach.node_parts
        else:
            ceiling = rule.output_level if rule.output_level is not None else dest.level
            leaves = min(effective, ceiling)
            outcome, out_parts = SANITIZED, reach.node_parts
        hop = Hop(
            boundary=b.name,
            source_zone=b.source_zone.name,
            destination_zone=dest.name,
            destination_level=dest.level,
            field=field,
            arrives=flow.level,
            declared=rule.level,
            rule=reach.label,
            transform=rule.name,
            output=format_path(out_parts) if leaves is not None else None,
            leaves=leaves,
            outcome=outcome,
        )
        if leaves is None or outcome == LEAK:
            return hop, None
        return hop, _Flow(out_parts, leaves)


def _reaches(b: CompiledBoundary, flow: _Flow) -> Iterator[_Reach]:
    """Every rule of ``b`` that takes (part of) the field, as the sanitizer walks it."""
    parts = flow.parts
    if parts == (KEY,):
        yield _Reach(b.key_rule, "key", parts, parts)
        return
    if parts[:1] == (HEADERS,):
        rule = b.header_rules.get(parts[1])
        if rule is not None:
            yield _Reach(rule, f"headers.{parts[1]}", parts, parts)
        else:
            yield _Reach(None, "", parts, parts, BLOCKED if b.unlisted_headers_block else DROPPED)
        return
    unclassified = BLOCKED if b.unclassified_blocks else DROPPED
    yield from _walk(b.fields, parts, 0, (), unclassified)
    for d in b.derived:
        if _feeds(parts, d.source):
            # The sanitizer writes the value read at ``from`` to the output path: a field
            # inside the source lands at the same place inside the output, a field at or
            # around it (its value holds the source's) lands at the output itself. Never
            # at the field's own path: ``keep`` on a derive copies to ``d.output``.
            inside = parts[len(d.source) :]
            out = (*d.output, *inside)
            yield _Reach(d.rule, f"derive.{format_path(d.output)}", parts, d.output, out=out)


def _walk(node: RuleNode, parts: Parts, i: int, here: Parts, unclassified: str) -> Iterator[_Reach]:
    if node.rule is not None:
        yield _Reach(node.rule, f"fields.{node.rule.path}", (*here, *parts[i:]), here)
        return
    if i == len(parts):
        # A whole value (an object kept upstream): every rule inside it takes its part.
        inner = list(_rules_under(node, here))
        for rule_parts, rule in inner:
            yield _Reach(rule, f"fields.{rule.path}", rule_parts, rule_parts)
        if not inner:
            yield _Reach(None, "", here, here, unclassified)
        return
    seg = parts[i]
    if seg == ITEMS:
        if node.items is not None:
            yield from _walk(node.items, parts, i + 1, (*here, ITEMS), unclassified)
        else:  # an array where the rules expect an object or a value: quarantined
            yield _Reach(None, "", (*here, *parts[i:]), here, BLOCKED)
        return
    if seg == WILDCARD:
        # Any key: it may be one the rules name, or any other.
        for name, child in node.children.items():
            yield from _walk(child, parts, i + 1, (*here, name), unclassified)
        if node.wildcard is not None:
            yield from _walk(node.wildcard, parts, i + 1, (*here, WILDCARD), unclassified)
        else:
            yield _Reach(None, "", (*here, *parts[i:]), here, unclassified)
        return
    named = node.children.get(seg) or node.wildcard
    if named is None:
        yield _Reach(None, "", (*here, *parts[i:]), here, unclassified)
    else:
        yield from _walk(named, parts, i + 1, (*here, seg), unclassified)


def _feeds(parts: Parts, source: Parts) -> bool:
    """A field at ``parts`` is at, inside or around a derive's ``from`` path (which has
    no ``*`` or ``[]``: the loader refuses them); a derive reads no array."""
    for have, want in zip(parts, source, strict=False):
        if have == ITEMS or (have != want and have != WILDCARD):
            return False
    return True


# -- the --explain table ------------------------------------------------------------------

_COLUMNS = (
    "path",
    "hop",
    "boundary",
    "zones",
    "field",
    "arrives",
    "rule",
    "rule class",
    "transform",
    "output",
    "leaves",
    "outcome",
)


def explain(proof: FlowProof) -> str:
    """The table of paths, hops and classes ``check-policy --explain`` prints: one row per
    hop; a hop handles the field as the higher of ``arrives`` and ``rule class``."""
    rows: list[tuple[str, ...]] = []
    for number, path in enumerate(proof.paths, 1):
        for index, h in enumerate(path.hops, 1):
            rows.append(
                (
                    str(number),
                    str(index),
                    h.boundary,
                    f"{h.source_zone}>{h.destination_zone}",
                    h.field,
                    str(h.arrives),
                    h.rule or "-",
                    str(h.declared) if h.declared is not None else "-",
                    h.transform or "-",
                    h.output or "-",
                    str(h.leaves) if h.leaves is not None else "-",
                    h.outcome,
                )
            )
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(_COLUMNS)
    ]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (_COLUMNS, *rows)
    ]
    verdict = (
        f"proven: {len(proof.paths)} paths, {proof.hop_count} hops; no class reaches a lower "
        "zone unsanitized"
        if proof.ok
        else f"refused: {len(proof.problems)} problem(s)"
    )
    return "\n".join([*lines, verdict])
