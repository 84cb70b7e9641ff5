"""Ingress checks of a boundary, compiled once: a JSON Schema per source topic, a rate limit.

Decisions (README, "Ingress checks"):

- **Validator: jsonschema-rs**, measured against fastjsonschema on the bench payment
  records (``python -m bench.schema``): about 5x faster on valid records, it reports the
  schema path of a failure (fastjsonschema names only the keyword), and it knows drafts
  4 to 2020-12 (fastjsonschema stops at draft 7). The schema is compiled once, here,
  when the policy loads; a schema that does not load is a policy error.
- **No network, no other files.** The validator runs offline: a ``$ref`` to anything
  but the schema file itself is refused when the policy loads (nothing is fetched).
- **Formats are asserted** (``format: date-time`` is checked, not just an annotation):
  "only expected formats enter a zone".
- **A failure never carries the value.** Only the keyword, the schema path (schema
  text) and the instance location are reported. An object key in the instance
  location is written as is only when the schema declares it (a ``properties`` or
  ``required`` name anywhere in the file: schema text, not data); any other key,
  which the producer chose and which may be data (an e-mail used as a key), is ``*``.
  Array indices are kept (they are positions, not values). The validator's own
  messages, which quote values, are never used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jsonschema_rs

if TYPE_CHECKING:
    from zoneapp.policy.compiled import RuleNode

#: At most this many schema failures are reported per record (the first is the reason).
MAX_FAILURES = 5
_COMBINATORS = ("allOf", "anyOf", "oneOf", "then", "else", "if")
_MAX_WALK_DEPTH = 64


class SchemaLoadError(Exception):
    """Why a schema file does not load; the message names the problem, never a record."""


@dataclass(frozen=True, slots=True)
class SchemaFailure:
    """One way a record fails its schema: places only, never the value."""

    keyword: str
    #: JSON pointer into the schema, e.g. ``/properties/items/items/properties/price/minimum``.
    schema_path: str
    #: JSON pointer into the record, undeclared keys as ``*``, e.g. ``/items/1/price``.
    instance_path: str
    #: The same place in policy terms (``items[].price``; ``$value`` for the record itself).
    field_path: str


@dataclass(frozen=True, slots=True)
class RecordSchema:
    """One loaded, compiled JSON Schema file."""

    #: The path as the policy wrote it (relative to the policy file), for messages.
    name: str
    file: Path
    draft: str
    #: SHA-256 of the file: the policy's own hash does not cover it (README, Ingress checks).
    digest: str
    #: Field paths (policy syntax) the schema allows; ``*`` is any key, ``[]`` any item.
    allowed: tuple[str, ...]
    declared: frozenset[str]
    validator: Any = field(repr=False)

    def is_valid(self, doc: Any) -> bool:
        return bool(self.validator.is_valid(doc))

    def failures(self, doc: Any) -> list[SchemaFailure]:
        """Where ``doc`` fails (the first :data:`MAX_FAILURES`); empty when it is valid."""
        out: list[SchemaFailure] = []
        for error in self.validator.iter_errors(doc):
            schema_path = [str(p) for p in error.schema_path]
            instance = [
                p if isinstance(p, int) else (p if p in self.declared else "*")
                for p in error.instance_path
            ]
            out.append(
                SchemaFailure(
                    keyword=schema_path[-1] if schema_path else "schema",
                    schema_path=_pointer(schema_path),
                    instance_path=_pointer(instance),
                    field_path=_field_path(instance),
                )
            )
            if len(out) >= MAX_FAILURES:
                break
        return out


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket per tenant (or per tenant and key) of one boundary, per worker."""

    rate: float
    burst: int
    per: Literal["tenant", "tenant_and_key"]
    over_limit: Literal["delay", "quarantine"]
    max_buckets: int
    #: The tenant as a whole (``per: tenant_and_key``); with ``per: tenant``: rate, burst.
    tenant_rate: float = 0.0
    tenant_burst: int = 0
    new_buckets: int = 10
    max_wait: float = 60.0

    def __post_init__(self) -> None:
        if self.per == "tenant" or not self.tenant_rate:
            object.__setattr__(self, "tenant_rate", self.tenant_rate or self.rate)
            object.__setattr__(self, "tenant_burst", self.tenant_burst or self.burst)

    def describe(self) -> str:
        if self.per == "tenant":
            limit = f"{self.rate:g}/s, burst {self.burst}, per tenant"
        else:
            limit = (
                f"{self.rate:g}/s, burst {self.burst}, per tenant and key, within "
                f"{self.tenant_rate:g}/s, burst {self.tenant_burst} per tenant"
            )
        wait = f" (at most {self.max_wait:g}s)" if self.over_limit == "delay" else ""
        return (
            f"{limit}, over the limit: {self.over_limit}{wait}, "
            f"at most {self.max_buckets} buckets, {self.new_buckets} new per refill"
        )


@dataclass(frozen=True, slots=True)
class CompiledIngress:
    #: Source topic -> its schema (a topic missing here, or mapped to None, has none).
    schemas: Mapping[str, RecordSchema | None]
    rate_limit: RateLimit | None = None

    @property
    def active(self) -> bool:
        return self.rate_limit is not None or any(s is not None for s in self.schemas.values())


def _pointer(parts: Sequence[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _field_path(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += "[]"
        else:
            out += f".{p}" if out else p
    return out or "$value"


def load_schema(name: str, base: Path) -> RecordSchema:
    """Read, check (against its meta-schema) and compile the schema file ``base / name``."""
    path = base / name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SchemaLoadError(f"cannot read it: {exc.strerror or type(exc).__name__}") from None
    try:
        schema = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SchemaLoadError("it is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise SchemaLoadError(
            f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(schema, dict | bool):
        raise SchemaLoadError("a JSON Schema is an object (or true/false)")
    external = sorted(_external_refs(schema))
    if external:
        raise SchemaLoadError(
            f"$ref {external[0]!r} points outside the file; only refs within it "
            "(#/...) are allowed: nothing is fetched"
        )
    try:
        validator = jsonschema_rs.validator_for(schema, validate_formats=True, offline=True)
    except jsonschema_rs.ValidationError as exc:
        where = _pointer([str(p) for p in exc.instance_path]) or "the root"
        first = str(exc.message).splitlines()[0] if exc.message else "invalid"
        raise SchemaLoadError(f"not a valid JSON Schema at {where}: {first}") from None
    except (jsonschema_rs.ReferencingError, ValueError) as exc:
        raise SchemaLoadError(f"it does not compile: {str(exc).splitlines()[0]}") from None
    draft = str(schema.get("$schema", "2020-12 (default)")) if isinstance(schema, dict) else "-"
    return RecordSchema(
        name=name,
        file=path,
        draft=draft,
        digest=hashlib.sha256(raw).hexdigest(),
        allowed=tuple(sorted(set(_allowed(schema, schema, "", 0, frozenset())))),
        declared=frozenset(_declared(schema)),
        validator=validator,
    )


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _external_refs(schema: Any) -> Iterator[str]:
    for node in _walk(schema):
        if isinstance(node, dict):
            for key in ("$ref", "$dynamicRef"):
                ref = node.get(key)
                if isinstance(ref, str) and not ref.startswith("#"):
                    yield ref


def _declared(schema: Any) -> Iterator[str]:
    """Every property name the schema's author wrote: reported as is in failure paths."""
    for node in _walk(schema):
        if not isinstance(node, dict):
            continue
        props = node.get("properties")
        if isinstance(props, dict):
            yield from (str(k) for k in props)
        required = node.get("required")
        if isinstance(required, list):
            yield from (r for r in required if isinstance(r, str))
        dependent = node.get("dependentRequired")
        if isinstance(dependent, dict):
            yield from (str(k) for k in dependent)


def _resolve(root: Any, ref: str) -> Any:
    node = root
    for raw in ref.removeprefix("#").split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _allowed(root: Any, node: Any, prefix: str, depth: int, refs: frozenset[str]) -> list[str]:
    """The field paths (policy syntax) a schema node allows below ``prefix``; a leaf
    (anything that is not an object or array with declared members) is ``prefix`` itself."""
    if node is False or depth > _MAX_WALK_DEPTH:
        return []
    if not isinstance(node, dict):
        return [prefix or "*"]
    out: list[str] = []
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#") and ref not in refs:
        out += _allowed(root, _resolve(root, ref), prefix, depth + 1, refs | {ref})
    closed = node.get("additionalProperties") is False or node.get("unevaluatedProperties") is False
    # A branch's own openness does not open a closed object: its "any key" is dropped.
    any_key = _join(prefix, "*")
    for key in _COMBINATORS:
        sub = node.get(key)
        subs = sub if isinstance(sub, list) else [sub] if isinstance(sub, dict) else []
        for s in subs:
            out += [
                p
                for p in _allowed(root, s, prefix, depth + 1, refs)
                if p != prefix and not (closed and p == any_key)
            ]
    types = node.get("type")
    type_list = types if isinstance(types, list) else [types]
    props = node.get("properties")
    is_object = "object" in type_list or any(
        k in node for k in ("properties", "patternProperties", "additionalProperties")
    )
    if is_object:
        if isinstance(props, dict):
            for name, sub in props.items():
                out += _allowed(root, sub, _join(prefix, str(name)), depth + 1, refs)
        if isinstance(node.get("patternProperties"), dict) or not closed:
            extra = node.get("additionalProperties")
            sub = extra if isinstance(extra, dict) else True
            out += _allowed(root, sub, any_key, depth + 1, refs)
    is_array = "array" in type_list or any(k in node for k in ("items", "prefixItems"))
    if is_array:
        items: list[Any] = []
        if isinstance(node.get("items"), dict | bool):
            items.append(node["items"])
        if isinstance(node.get("prefixItems"), list):
            items += node["prefixItems"]
        for sub in items or [True]:
            out += _allowed(root, sub, prefix + "[]", depth + 1, refs)
    if not out:
        return [prefix or "*"]
    return out


def unnamed_fields(schema: RecordSchema, rules: RuleNode) -> list[str]:
    """The fields ``schema`` allows that no field rule covers: what default-deny will drop
    (or, with ``unclassified: block``, what will quarantine the record)."""
    out: list[str] = []
    for path in schema.allowed:
        node: RuleNode | None = rules
        for part in _parts(path):
            if node is None or node.rule is not None:
                break
            if part == "[]":
                node = node.items
            elif part == "*":
                node = node.wildcard
            else:
                node = node.children.get(part) or node.wildcard
        if node is None or node.rule is None:
            out.append(path)
    return out


def _parts(path: str) -> list[str]:
    """``items[].sku`` -> ``["items", "[]", "sku"]`` (the loader's path syntax)."""
    parts: list[str] = []
    for segment in path.split("."):
        depth = 0
        while segment.endswith("[]"):
            segment = segment[:-2]
            depth += 1
        if segment:
            parts.append(segment)
        parts.extend(["[]"] * depth)
    return parts
