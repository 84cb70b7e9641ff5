"""Load, validate and compile a zone policy file.

Every problem is reported with the file, the place (YAML line and path, such as
``boundaries[0].fields.card_number``) and what is wrong; all problems are
collected, not just the first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from zoneapp.dlp import DEFAULT_REGIONS, build_scanner
from zoneapp.keys.envelope import KAFKA_TOPIC
from zoneapp.policy.compiled import (
    AUDIT_TOPIC,
    ITEMS,
    WILDCARD,
    CompiledBoundary,
    CompiledPolicy,
    CompiledRule,
    DerivedField,
    RuleNode,
    TenantBinding,
    TracePolicy,
    Zone,
)
from zoneapp.policy.errors import ParamError, PolicyError
from zoneapp.policy.ingress import (
    CompiledIngress,
    RateLimit,
    RecordSchema,
    SchemaLoadError,
    load_schema,
)
from zoneapp.policy.levels import Level
from zoneapp.policy.spec import BoundarySpec, PolicySpec, RuleSpec
from zoneapp.policy.subjects import NORMALIZERS
from zoneapp.transforms import TransformSpec, build_transform
from zoneapp.vault.layout import EMPTY_TENANT_TAG, RESERVED_TENANT_CHARS

# A W3C tracestate key (simple or multi-tenant form).
_TRACESTATE_KEY = re.compile(
    r"[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}"
)

Loc = tuple[str | int, ...]


def load_policy(path: str | Path) -> CompiledPolicy:
    """Read, validate and compile ``path``; raise PolicyError naming every problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise PolicyError([f"cannot read the file: {exc.strerror or exc}"], str(p)) from None
    return compile_policy_text(raw, str(p))


def compile_policy_text(raw: bytes, source: str = "<policy>") -> CompiledPolicy:
    """Raises PolicyError for every way the text can be wrong, nesting too deep for the
    YAML parser or the model included (a RecursionError would crash a reloading worker)."""
    try:
        return _compile_policy_text(raw, source)
    except RecursionError:
        raise PolicyError(["nesting too deep"], source) from None


def _compile_policy_text(raw: bytes, source: str) -> CompiledPolicy:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(["the file is not UTF-8"], source) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyError([f"{where}{problem}"], source) from None
    lines = _line_index(node)
    if not isinstance(data, dict):
        raise PolicyError(["the policy must be a YAML mapping"], source)
    try:
        spec = PolicySpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            _place(tuple(err["loc"]), lines) + _pydantic_message(err)
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise PolicyError(problems, source) from None
    return _Compiler(spec, source, lines, hashlib.sha256(raw).hexdigest()).compile()


def _pydantic_message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _line_index(node: yaml.Node | None) -> dict[Loc, int]:
    """Map each YAML path to its 1-based line, for error messages."""
    index: dict[Loc, int] = {}

    def walk(n: yaml.Node, loc: Loc) -> None:
        index[loc] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
                index[(*loc, key)] = k.start_mark.line + 1
                walk(v, (*loc, key))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*loc, i))

    if node is not None:
        walk(node, ())
    return index


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<top>"


def _place(loc: Loc, lines: Mapping[Loc, int]) -> str:
    # pydantic adds model names for unions/tagged values; keep the parts that exist in YAML.
    probe = loc
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe)
    where = f"line {line}, " if line is not None else ""
    return f"{where}{_dotted(loc)}: "


def parse_path(path: str) -> list[str]:
    """``items[].card`` → ``["items", "[]", "card"]``; ``attrs.*`` → ``["attrs", "*"]``."""
    if not path or path.strip() != path:
        raise ParamError("a field path must be non-empty with no surrounding spaces")
    parts: list[str] = []
    for segment in path.split("."):
        name = segment
        depth = 0
        while name.endswith(ITEMS):
            name = name[: -len(ITEMS)]
            depth += 1
        if not name or "[" in name or "]" in name:
            raise ParamError(
                f"bad field path {path!r}: write nested fields as a.b and arrays as a[]"
            )
        parts.append(name)
        parts.extend([ITEMS] * depth)
    return parts


def _covers(root: RuleNode, parts: list[str]) -> bool:
    node: RuleNode | None = root
    for part in parts:
        if node is None or node.rule is not None:
            return node is not None
        node = node.children.get(part) or node.wildcard
    return node is not None


class _Compiler:
    def __init__(self, spec: PolicySpec, source: str, lines: Mapping[Loc, int], digest: str):
        self.spec = spec
        self.source = source
        self.lines = lines
        self.digest = digest
        self.problems: list[str] = []

    def fail(self, loc: Loc, message: str) -> None:
        self.problems.append(_place(loc, self.lines) + message)

    def compile(self) -> CompiledPolicy:
        spec = self.spec
        zones = self._zones()
        try:
            scanner = build_scanner(
                spec.dlp.detectors,
                [(c.name, c.pattern, c.ignore_case) for c in spec.dlp.custom],
                phone_regions=spec.dlp.phone_regions or DEFAULT_REGIONS,
            )
        except ValueError as exc:
            self.fail(("dlp",), str(exc))
            scanner = build_scanner([], [])
        known_detectors = set(spec.dlp.detectors) | {c.name for c in spec.dlp.custom}
        policy = CompiledPolicy(
            spec=spec,
            source=self.source,
            version=spec.version,
            digest=self.digest,
            zones=zones,
            boundaries=[],
            scanner=scanner,
            tenant_path=None,
            subject_path=None,
            max_record_bytes=spec.limits.max_record_bytes,
            max_depth=spec.limits.max_depth,
            security_topic=spec.security_topic,
        )
        if spec.tenant_id is not None:
            try:
                tenant = parse_path(spec.tenant_id)
                if ITEMS in tenant or WILDCARD in tenant:
                    raise ParamError("the tenant id path cannot go through arrays or wildcards")
                policy.tenant_path = tuple(tenant)
            except ParamError as exc:
                self.fail(("tenant_id",), str(exc))
        if spec.subject_id is not None:
            policy.subject_path = self._plain_path(("subject_id",), spec.subject_id)
        names: set[str] = set()
        for i, b in enumerate(spec.boundaries):
            if b.name in names:
                self.fail(("boundaries", i, "name"), f"boundary name {b.name!r} is used twice")
            names.add(b.name)
            compiled = self._boundary(i, b, policy, known_detectors)
            if compiled is not None:
                policy.boundaries.append(compiled)
        self._operational_topics(policy)
        if self.problems:
            raise PolicyError(self.problems, self.source)
        return policy

    def _plain_path(self, loc: Loc, path: str) -> tuple[str, ...] | None:
        try:
            parts = parse_path(path)
            if ITEMS in parts or WILDCARD in parts:
                raise ParamError("this path cannot go through arrays or wildcards")
        except ParamError as exc:
            self.fail(loc, str(exc))
            return None
        return tuple(parts)

    def _zones(self) -> dict[str, Zone]:
        """Zones and their topic prefixes. Prefixes must be unambiguous: none empty and none
        a prefix of another, so a topic (a quarantine above all) belongs to exactly the zone
        whose prefix it starts with, and no zone's topics can be nested inside another's."""
        zones: dict[str, Zone] = {}
        prefixes: dict[str, str] = {}
        suffix = self.spec.quarantine_suffix
        if not KAFKA_TOPIC.fullmatch(suffix):
            self.fail(("quarantine_suffix",), "must be 1-249 of [A-Za-z0-9._-]")
        for i, z in enumerate(self.spec.zones):
            if z.name in zones:
                self.fail(("zones", i, "name"), f"zone {z.name!r} is declared twice")
                continue
            prefix = z.topic_prefix if z.topic_prefix is not None else f"{z.name}."
            if prefix in prefixes:
                self.fail(
                    ("zones", i, "topic_prefix"),
                    f"topic prefix {prefix!r} is already zone {prefixes[prefix]!r}'s",
                )
            elif not KAFKA_TOPIC.fullmatch(prefix):
                self.fail(("zones", i, "topic_prefix"), "must be 1-249 of [A-Za-z0-9._-]")
            for other, name in prefixes.items():
                if other != prefix and (prefix.startswith(other) or other.startswith(prefix)):
                    self.fail(
                        ("zones", i, "topic_prefix"),
                        f"topic prefix {prefix!r} and zone {name!r}'s {other!r} are nested: "
                        "a topic could belong to both; use prefixes that do not start one "
                        "another",
                    )
            prefixes[prefix] = z.name
            zones[z.name] = Zone(
                name=z.name,
                level=Level.parse(z.level),
                topic_prefix=prefix,
                quarantine_topic=prefix + self.spec.quarantine_suffix,
            )
        return zones

    def _operational_topics(self, policy: CompiledPolicy) -> None:
        """Quarantine, security and audit topics receive data (the original record, or
        events about it) of their sources: each must sit in a zone at least as high as
        that data, or (security and audit topics) outside every zone, never in a lower
        zone, whose boundaries and readers would get it."""
        for i, z in enumerate(self.spec.zones):
            zone = policy.zones.get(z.name)
            if zone is None:
                continue
            holder = policy.zone_of_topic(zone.quarantine_topic)
            if holder is None or holder.level < zone.level:
                where = f"zone {holder.name!r} ({holder.level})" if holder else "no zone"
                self.fail(
                    ("zones", i),
                    f"the quarantine topic {zone.quarantine_topic!r} of zone {zone.name!r} "
                    f"({zone.level}) belongs to {where}",
                )
        levels = [b.source_zone.level for b in policy.boundaries]
        if not levels:
            return
        highest = max(levels)
        for loc, topic, what in (
            (("security_topic",), policy.security_topic, "security"),
            ((), AUDIT_TOPIC, "audit"),
        ):
            holder = policy.zone_of_topic(topic)
            if holder is not None and holder.level < highest:
                self.fail(
                    loc,
                    f"the {what} topic {topic!r} belongs to zone {holder.name!r} "
                    f"({holder.level}) but receives events about {highest} data; put it in "
                    "a zone at least that high, or outside every zone prefix",
                )
            if any(topic in b.sources or topic == b.destination for b in policy.boundaries):
                self.fail(loc, f"the {what} topic {topic!r} is a boundary's source or destination")

    def _tenant_binding(
        self, loc: Loc, b: BoundarySpec, policy: CompiledPolicy
    ) -> TenantBinding | None:
        """Compile ``tenants`` into the allowed tenants of each source topic."""
        if b.tenants is None:
            return None
        if policy.tenant_path is None:
            self.fail((*loc, "tenants"), "binding tenants to topics needs the policy's tenant_id")
            return None
        by_topic: dict[str, frozenset[str]] = {}
        if isinstance(b.tenants, str):
            pattern = b.tenants
            if pattern.count("{tenant}") != 1:
                self.fail((*loc, "tenants"), "a tenant pattern needs exactly one '{tenant}'")
                return None
            head, tail = pattern.split("{tenant}")
            for topic in b.source:
                inner = topic[len(head) : len(topic) - len(tail)]
                if not (topic.startswith(head) and topic.endswith(tail) and inner):
                    self.fail((*loc, "tenants"), f"source {topic!r} does not match {pattern!r}")
                    continue
                by_topic[topic] = frozenset({inner})
        else:
            for topic, tenants in b.tenants.items():
                if topic not in b.source:
                    self.fail((*loc, "tenants", topic), "is not a source of this boundary")
                elif not tenants or any(not t for t in tenants):
                    self.fail((*loc, "tenants", topic), "list one tenant id or more")
                else:
                    by_topic[topic] = frozenset(tenants)
            for topic in b.source:
                if topic not in b.tenants:
                    self.fail((*loc, "tenants"), f"source {topic!r} has no tenant list")
        for topic, allowed in by_topic.items():
            for t in allowed:
                if t == EMPTY_TENANT_TAG or RESERVED_TENANT_CHARS & set(t):
                    self.fail((*loc, "tenants"), f"tenant id {t!r} of {topic!r} is reserved")
        return TenantBinding(by_topic)

    def _topic_zone(self, policy: CompiledPolicy, loc: Loc, topic: str) -> Zone | None:
        zone = policy.zone_of_topic(topic)
        if zone is None:
            prefixes = ", ".join(repr(z.topic_prefix) for z in policy.zones.values())
            self.fail(loc, f"topic {topic!r} belongs to no zone (zone prefixes: {prefixes})")
        return zone

    def _boundary(
        self, i: int, b: BoundarySpec, policy: CompiledPolicy, known_detectors: set[str]
    ) -> CompiledBoundary | None:
        loc: Loc = ("boundaries", i)
        source_zones = [
            self._topic_zone(policy, (*loc, "source", j), t) for j, t in enumerate(b.source)
        ]
        dest_zone = self._topic_zone(policy, (*loc, "destination"), b.destination)
        if dest_zone is None or any(z is None for z in source_zones):
            return None
        zones = {z.name: z for z in source_zones if z is not None}
        if len(zones) > 1:
            self.fail(
                (*loc, "source"), f"all sources must be in one zone, got {', '.join(sorted(zones))}"
            )
            return None
        src = next(iter(zones.values()))
        if dest_zone.level > src.level:
            self.fail(
                (*loc, "destination"),
                f"boundary goes up, from {src.name!r} ({src.level}) to {dest_zone.name!r} "
                f"({dest_zone.level}); data may only move up after checks, not through a sanitizer",
            )
        if b.destination in b.source:
            self.fail((*loc, "destination"), "the destination is also a source")
        quarantines = {z.quarantine_topic: z.name for z in policy.zones.values()}
        if b.destination == src.quarantine_topic:
            self.fail(
                (*loc, "destination"), "the destination is the source zone's quarantine topic"
            )
        elif b.destination in quarantines:
            self.fail(
                (*loc, "destination"),
                f"the destination is zone {quarantines[b.destination]!r}'s quarantine topic, "
                "which holds originals for review and release",
            )
        for j, topic in enumerate(b.source):
            if topic in quarantines:
                # Originals as they arrived: a boundary reading them would forward raw data
                # under its own (possibly lower) classes. An approved release re-runs them.
                self.fail(
                    (*loc, "source", j),
                    f"{topic!r} is zone {quarantines[topic]!r}'s quarantine topic: it holds "
                    "unsanitized originals, which no boundary reads (an approved release "
                    "re-runs a quarantined record through its own boundary)",
                )

        key_rule = self._rule((*loc, "key"), "$key", b.key, src, dest_zone)
        if key_rule is not None and not key_rule.transform.deterministic:
            self.fail(
                (*loc, "key"),
                f"the key transform {key_rule.name!r} is not deterministic: equal keys must "
                "give equal output keys (partitioning, compaction, tombstones)",
            )
        header_rules: dict[str, CompiledRule] = {}
        for name, rule in b.headers.rules.items():
            compiled = self._rule(
                (*loc, "headers", "rules", name), f"$headers.{name}", rule, src, dest_zone
            )
            if compiled is not None:
                header_rules[name.lower()] = compiled
        root = RuleNode()
        for path, rule in b.fields.items():
            compiled = self._rule((*loc, "fields", path), path, rule, src, dest_zone)
            if compiled is not None:
                self._insert(root, (*loc, "fields", path), path, compiled)
        derived: list[DerivedField] = []
        for out_path, d in b.derive.items():
            dloc: Loc = (*loc, "derive", out_path)
            params = {k: v for k, v in d.params.items() if k != "from"}
            rule = RuleSpec.model_validate(
                {
                    "transform": d.transform,
                    "class": d.classification,
                    "output_class": d.output_class,
                    **params,
                }
            )
            compiled = self._rule(dloc, out_path, rule, src, dest_zone)
            try:
                out_parts, src_parts = parse_path(out_path), parse_path(d.source)
            except ParamError as exc:
                self.fail(dloc, str(exc))
                continue
            if any(p in (ITEMS, WILDCARD) for p in (*out_parts, *src_parts)):
                self.fail(dloc, "derived fields cannot go through arrays or wildcards")
            elif _covers(root, out_parts):
                self.fail(dloc, f"derived field {out_path!r} is also a field rule")
            elif compiled is not None:
                derived.append(DerivedField(tuple(out_parts), tuple(src_parts), compiled))
        allowed: set[tuple[str, str]] = set()
        for j, a in enumerate(b.allow):
            for detector in a.detectors:
                if detector not in known_detectors:
                    self.fail(
                        (*loc, "allow", j, "detectors"),
                        f"detector {detector!r} is not enabled in dlp",
                    )
                allowed.add((a.path, detector))
        if key_rule is None:
            return None
        normalizer = b.subject_normalizer or self.spec.subject_normalizer
        return CompiledBoundary(
            name=b.name,
            sources=tuple(b.source),
            source_zone=src,
            destination=b.destination,
            destination_zone=dest_zone,
            unclassified_blocks=b.unclassified == "block",
            key_rule=key_rule,
            header_rules=header_rules,
            unlisted_headers_block=b.headers.unlisted == "block",
            subject_path=(
                self._plain_path((*loc, "subject_id"), b.subject_id)
                if b.subject_id is not None
                else policy.subject_path
            ),
            fields=root,
            derived=derived,
            allowed=frozenset(allowed),
            tenant_binding=self._tenant_binding(loc, b, policy),
            subject_normalizer=NORMALIZERS[normalizer],
            subject_normalizer_name=normalizer,
            trace_policy=self._trace_policy(loc, b),
            ingress=self._ingress(loc, b),
        )

    def _ingress(self, loc: Loc, b: BoundarySpec) -> CompiledIngress | None:
        """``ingress:``: each schema loaded and compiled once (relative to the policy file)."""
        spec = b.ingress
        named = spec.schema_
        by_topic: dict[str, str | None] = (
            dict.fromkeys(b.source, named) if named is None or isinstance(named, str) else named
        )
        schemas: dict[str, RecordSchema | None] = {}
        loaded: dict[str, RecordSchema] = {}
        base = Path(self.source).parent
        for topic, name in by_topic.items():
            where: Loc = (*loc, "ingress", "schema") + (() if isinstance(named, str) else (topic,))
            if topic not in b.source:
                self.fail(where, f"{topic!r} is not a source of this boundary")
                continue
            if name is None:
                schemas[topic] = None
                continue
            if name not in loaded:
                try:
                    loaded[name] = load_schema(name, base)
                except SchemaLoadError as exc:
                    self.fail(where, f"the JSON Schema {str(base / name)!r} does not load: {exc}")
                    continue
            schemas[topic] = loaded[name]
        for topic in b.source:
            if isinstance(named, dict) and topic not in named:
                self.fail(
                    (*loc, "ingress", "schema"),
                    f"source {topic!r} has no schema entry (name a file, or null for none)",
                )
        limit = spec.rate_limit
        rate = (
            None
            if limit is None
            else RateLimit(
                limit.rate,
                limit.burst,
                limit.per,
                limit.over_limit,
                limit.max_buckets,
                tenant_rate=limit.tenant_rate or 0.0,
                tenant_burst=limit.tenant_burst or 0,
                new_buckets=limit.new_buckets,
                max_wait=limit.max_wait,
            )
        )
        ingress = CompiledIngress(schemas, rate)
        return ingress if ingress.active else None

    def _trace_policy(self, loc: Loc, b: BoundarySpec) -> TracePolicy:
        """``trace:`` and the header rules for traceparent / tracestate, together."""
        rules = {name.lower(): rule.transform for name, rule in b.headers.rules.items()}
        keep_trace = b.trace.continue_ and rules.get("traceparent") != "suppress"
        keys = frozenset(b.trace.tracestate_keys)
        if "tracestate" in rules and rules["tracestate"] != "suppress":
            self.fail(
                (*loc, "headers", "rules", "tracestate"),
                "tracestate is the producer's free text: list the vendor keys that may "
                "cross in trace.tracestate_keys instead of a rule",
            )
        if rules.get("tracestate") == "suppress":
            keys = frozenset()
        for key in sorted(keys):
            if not _TRACESTATE_KEY.fullmatch(key):
                self.fail((*loc, "trace", "tracestate_keys"), f"{key!r} is not a tracestate key")
        return TracePolicy(continue_trace=keep_trace, tracestate_keys=keys)

    def _rule(
        self, loc: Loc, path: str, rule: RuleSpec, src: Zone, dest: Zone
    ) -> CompiledRule | None:
        level = Level.parse(rule.classification) if rule.classification else src.level
        if rule.transform == "keep" and level > dest.level:
            how = "classified" if rule.classification else "unclassified, so taken as"
            self.fail(
                loc,
                f"'keep' would move a field {how} {level} into {dest.name!r} ({dest.level}); "
                "choose a transform that sanitizes it, or classify it at or below the destination",
            )
            return None
        field_class = path.rsplit(".", 1)[-1].replace(ITEMS, "").lstrip("$") or "value"
        field_class = "".join(c if c.isalnum() else "_" for c in field_class)
        try:
            transform = build_transform(
                rule.transform,
                rule.params,
                TransformSpec(rule_path=path, field_class=field_class, zone=src.name),
            )
        except ParamError as exc:
            self.fail(loc, str(exc))
            return None
        copies = transform.reproduces_value()
        if level > dest.level and copies is not None:
            self.fail(
                loc,
                f"{rule.transform!r} {copies}, so it would move a {level} field into "
                f"{dest.name!r} ({dest.level})",
            )
            return None
        output = self._output_level(loc, rule, copies, dest)
        return CompiledRule(path=path, transform=transform, level=level, output_level=output)

    def _output_level(
        self, loc: Loc, rule: RuleSpec, copies: str | None, dest: Zone
    ) -> Level | None:
        """``output_class``: only a sanitizing transform has an output class of its own
        (``keep`` and a transform that can reproduce the value pass the input's on,
        ``suppress`` outputs nothing), and it cannot be above the zone it is written to."""
        if rule.output_class is None:
            return None
        output = Level.parse(rule.output_class)
        if rule.transform in ("keep", "suppress") or copies is not None:
            why = copies if copies is not None else "does not sanitize"
            self.fail(
                (*loc, "output_class"),
                f"{rule.transform!r} {why}: only a sanitizing transform declares the class "
                "of its output",
            )
            return None
        if output > dest.level:
            self.fail(
                (*loc, "output_class"),
                f"output class {output} is above the destination zone {dest.name!r} "
                f"({dest.level}) it is written to",
            )
            return None
        return output

    def _insert(self, root: RuleNode, loc: Loc, path: str, rule: CompiledRule) -> None:
        try:
            parts = parse_path(path)
        except ParamError as exc:
            self.fail(loc, str(exc))
            return
        node = root
        for part in parts:
            if node.rule is not None:
                self.fail(loc, f"{path!r} is inside {node.rule.path!r}, which already has a rule")
                return
            if part == ITEMS:
                node.items = node.items or RuleNode()
                node = node.items
            elif part == WILDCARD:
                node.wildcard = node.wildcard or RuleNode()
                node = node.wildcard
            else:
                node = node.children.setdefault(part, RuleNode())
        if node.rule is not None or node.children or node.items or node.wildcard:
            self.fail(loc, f"{path!r} overlaps another rule")
            return
        node.rule = rule
