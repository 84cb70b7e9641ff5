"""The policy after validation: zones, boundaries and a rule tree per boundary.

Built once at start-up; the sanitizer only reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from zoneapp.dlp import Scanner
from zoneapp.policy.ingress import CompiledIngress
from zoneapp.policy.levels import Level
from zoneapp.policy.spec import PolicySpec
from zoneapp.transforms import Transform

#: Where access/ writes its audit events; fixed so the policy can check which zone holds it.
AUDIT_TOPIC = "audit.access"
ITEMS = "[]"
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    level: Level
    topic_prefix: str
    quarantine_topic: str


@dataclass(slots=True)
class CompiledRule:
    path: str
    transform: Transform
    level: Level
    #: The declared class of a sanitizing transform's output (``output_class``), or None:
    #: the flow proof then takes the destination zone's level (:mod:`zoneapp.policy.flow`).
    output_level: Level | None = None
    name: str = field(init=False)
    #: ``keep`` is applied inline on the hot path, without a call.
    is_keep: bool = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.transform.name
        self.is_keep = self.name == "keep"


@dataclass(slots=True)
class RuleNode:
    """One step of a field path. A node has either a rule or children, never both."""

    rule: CompiledRule | None = None
    children: dict[str, RuleNode] = field(default_factory=dict)
    wildcard: RuleNode | None = None
    items: RuleNode | None = None

    @property
    def is_leaf(self) -> bool:
        return self.rule is not None

    def rules(self) -> Iterator[CompiledRule]:
        if self.rule is not None:
            yield self.rule
        for child in (*self.children.values(), self.wildcard, self.items):
            if child is not None:
                yield from child.rules()


@dataclass(frozen=True, slots=True)
class DerivedField:
    output: tuple[str, ...]
    source: tuple[str, ...]
    rule: CompiledRule


@dataclass(frozen=True, slots=True)
class TenantBinding:
    """Which tenants each source topic may carry (policy ``tenants``).

    A producer that may write a topic can write any record content, the tenant id
    included; this binding is what stops it from writing in another tenant's name.
    """

    by_topic: Mapping[str, frozenset[str]]

    def allows(self, topic: str, tenant: str) -> bool:
        return tenant in self.by_topic.get(topic, frozenset())

    def key_tenant(self, topic: str) -> str:
        """The tenant record keys of ``topic`` are transformed under: the topic's only
        tenant, or none (``""``) when the topic carries several (see README, Tombstones)."""
        tenants = self.by_topic.get(topic, frozenset())
        return next(iter(tenants)) if len(tenants) == 1 else ""


@dataclass(frozen=True, slots=True)
class TracePolicy:
    """What of a producer's trace context crosses a boundary.

    The span id never does (every output gets a fresh one). The trace id does when
    ``continue_trace`` (the default: a record's trace follows it across zones), which
    lets 16 producer-chosen bytes cross, so a policy can turn it off. ``tracestate``
    members cross only for the listed vendor keys, each DLP-scanned; by default none.
    """

    continue_trace: bool = True
    tracestate_keys: frozenset[str] = frozenset()


@dataclass(slots=True)
class CompiledBoundary:
    name: str
    sources: tuple[str, ...]
    source_zone: Zone
    destination: str
    destination_zone: Zone
    unclassified_blocks: bool
    key_rule: CompiledRule
    header_rules: dict[str, CompiledRule]
    unlisted_headers_block: bool
    subject_path: tuple[str, ...] | None
    fields: RuleNode
    #: Output fields computed from source fields: (output path, source path, rule).
    derived: list[DerivedField]
    #: (path pattern with indices removed, detector) pairs the DLP scan lets through.
    allowed: frozenset[tuple[str, str]]
    #: Tenants per source topic; None: any tenant id is accepted (not bound to topics).
    tenant_binding: TenantBinding | None = None
    #: Normalizes a subject id before it is hashed (:mod:`zoneapp.policy.subjects`).
    subject_normalizer: Callable[[str], str] = str.strip
    #: The name of that normalizer, for ``erase`` and ``check-policy``.
    subject_normalizer_name: str = "trim"
    trace_policy: TracePolicy = field(default_factory=TracePolicy)
    #: Schema and rate limit checks on entry (zoneapp.policy.ingress); None: none.
    ingress: CompiledIngress | None = None

    def key_tenant(self, topic: str) -> str:
        """The tenant a record key of ``topic`` is transformed under: never the body's, so a
        tombstone (no body) gets the same key as its live record."""
        return self.tenant_binding.key_tenant(topic) if self.tenant_binding else ""

    def all_rules(self) -> Iterator[CompiledRule]:
        yield self.key_rule
        yield from self.header_rules.values()
        yield from self.fields.rules()
        for d in self.derived:
            yield d.rule


@dataclass(slots=True)
class CompiledPolicy:
    spec: PolicySpec
    source: str
    version: str
    digest: str
    zones: dict[str, Zone]
    boundaries: list[CompiledBoundary]
    scanner: Scanner
    tenant_path: tuple[str, ...] | None
    subject_path: tuple[str, ...] | None
    max_record_bytes: int
    max_depth: int
    security_topic: str

    def zone_of_topic(self, topic: str) -> Zone | None:
        best: Zone | None = None
        for zone in self.zones.values():
            if topic.startswith(zone.topic_prefix) and (
                best is None or len(zone.topic_prefix) > len(best.topic_prefix)
            ):
                best = zone
        return best

    def boundary(self, name: str) -> CompiledBoundary:
        for b in self.boundaries:
            if b.name == name:
                return b
        raise KeyError(name)

    def topics(self) -> list[str]:
        """Every topic the boundaries read or write, quarantines and the security topic."""
        names: set[str] = {self.security_topic}
        for b in self.boundaries:
            names.update(b.sources)
            names.add(b.destination)
            names.add(b.source_zone.quarantine_topic)
        return sorted(names)
