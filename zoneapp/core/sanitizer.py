"""The boundary's core: one raw Kafka record in, a sanitized record or a quarantine out.

Pure and synchronous: working keys are prepared per batch by the
:class:`~zoneapp.keys.envelope.KeyRing`, vault writes are collected in the
outcome and stored by the caller before the record is produced. Nothing here
raises on bad input: every problem becomes a :class:`Problem` and the record is
quarantined.

Decisions:
- The record value must be a JSON object; a tombstone (null value) is forwarded
  as a tombstone with its key sanitized.
- Keys are JSON when they parse as JSON, else taken as a UTF-8 string; the
  sanitized key is always written as JSON so Faust's table routing agrees.
- Incoming ``zoneapp-*`` headers are replaced by this hop's lineage headers.
- A ``null`` value passes every rule unchanged (it carries nothing).
- The tenant a record key is transformed under comes from the source topic (its only
  bound tenant, else none), never from the body: a tombstone, which has no body, gets
  the same output key as its live record.
- With the boundary's ``tenants`` binding, a record whose tenant id the topic may not
  carry is quarantined (``tenant_mismatch``) before any transform or vault write.
- The DLP scan is the one step inside a phase that an observer (tracing) times, so it
  calls :class:`ScanObserver` explicitly when one is given; nothing here is wrapped.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from zoneapp.dlp import joined_views
from zoneapp.keys.envelope import HmacSha256
from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy, CompiledRule, RuleNode
from zoneapp.transforms import (
    NO_KNOWN_TOKENS,
    SUPPRESS,
    KnownTokens,
    RecordContext,
    TokenCollisionError,
    TransformTypeError,
    VaultEntry,
)
from zoneapp.transforms.keyed import letters
from zoneapp.transforms.simple import SuppressTransform
from zoneapp.vault.layout import EMPTY_TENANT_TAG, RESERVED_TENANT_CHARS

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from zoneapp.keys.envelope import KeyRing

LINEAGE_PREFIX = "zoneapp-"
_SMALL_INT = 10**7
# Floats at or above 2**53 that are whole numbers may not be the digits the
# producer wrote (orjson turns integers beyond 64 bits into floats).
_EXACT_FLOAT = 2.0**53
_INEXACT_NUMBER = "number too large to carry exactly"
# Outputs of keyed transforms: their text is not chosen by the producer, so the
# DLP scans them but never decodes them (see zoneapp.dlp.scanner.Scanner.scan).
OPAQUE_TRANSFORMS = frozenset({"encrypt", "hash", "tokenize"})


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp_ms: int | None = None

    def __repr__(self) -> str:  # never show the payload
        return f"RawRecord({self.topic}/{self.partition}@{self.offset})"

    @property
    def record_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a record was blocked. Carries a place and a cause, never a value."""

    reason: str
    path: str = "$value"
    detector: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class Forward:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    vault_entries: list[VaultEntry]
    applied: dict[str, int]
    suppressed: int


@dataclass(slots=True)
class Quarantine:
    problems: list[Problem]
    applied: dict[str, int] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.problems[0].reason


Outcome = Forward | Quarantine


@dataclass(slots=True)
class Parsed:
    """A record after the first phase: what the batch needs to know before transforms."""

    record: RawRecord
    doc: dict[str, Any] | None
    tenant: str
    subject: str | None
    #: The tenant the record key is transformed under (:meth:`CompiledBoundary.key_tenant`).
    key_tenant: str = ""


_PATH_SYNTAX = frozenset('.[]"$')


def _member(path: str, key: str) -> str:
    """The record path of a producer's key under ``path``.

    A key that reads as path syntax (``.``, brackets, quotes, a ``$`` as in ``$key``,
    or empty) is written ``["..."]`` (JSON), so no producer key shares the path of
    another field: the findings at a path are placed at that path's one place, and a
    key named ``"contact.phone"`` cannot borrow the allow-list of ``contact.phone``.
    """
    if key and _PATH_SYNTAX.isdisjoint(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{orjson.dumps(key).decode()}]"


class _Blocked(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.reason)
        self.problem = problem


def _too_deep(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


class ScanObserver(Protocol):
    """Told about each record's DLP scan (``zoneapp.pipeline.observer`` extends it)."""

    def on_dlp_scanned(self, record: RawRecord, started_ns: int, ended_ns: int, hits: int) -> None:
        """``hits``: detector findings before the policy's ``allow`` list."""


SUBJECT_PURPOSE = "subject"


def subject_hash(key: bytes | HmacSha256, tenant: str, subject: str) -> str:
    """The keyed hash a subject is indexed by in the vault: no plaintext id in Redis.

    ``key`` is the working key, or the key ring's keyed MAC of it (the hot path)."""
    message = tenant.encode() + b"\x1f" + subject.encode()
    mac = (
        key.digest(message) if isinstance(key, HmacSha256) else hmac.digest(key, message, "sha256")
    )
    return letters(mac[:16])


# What a step of the walk does (_Plan.kind).
_KEEP: Final = 0
_SUPPRESS: Final = 1
_RULE: Final = 2
_NODE: Final = 3


class _Plan:
    """A rule node (or a key or header rule) compiled for the walk, once per boundary:
    its kind, bound transform and, where no wildcard is above it, its place."""

    __slots__ = (
        "apply",
        "children",
        "expected",
        "items",
        "kind",
        "name",
        "objects",
        "opaque",
        "path",
        "place",
        "wildcard",
    )

    def __init__(
        self, rule: CompiledRule | None, place: str | None, path: str | None = None
    ) -> None:
        self.kind = _NODE
        self.name = ""
        self.opaque = False
        self.apply: Any = None
        if rule is not None:
            suppress = type(rule.transform) is SuppressTransform
            self.kind = _KEEP if rule.is_keep else _SUPPRESS if suppress else _RULE
            self.name = rule.name
            self.opaque = rule.name in OPAQUE_TRANSFORMS
            self.apply = rule.transform.apply
        #: The place in policy terms (see BoundarySanitizer._place); None below a wildcard,
        #: where it depends on the keys.
        self.place = place
        #: The field's path in the record, where no array is above it (then its place).
        self.path = path
        self.children: dict[str, _Plan] = {}
        self.wildcard: _Plan | None = None
        self.items: _Plan | None = None
        #: The node walks an object value (it has named or wildcard children).
        self.objects = False
        self.expected = "an object"

    @classmethod
    def of_node(cls, node: RuleNode, place: str | None, path: str | None) -> _Plan:
        plan = cls(node.rule, place, path)
        for key, child in node.children.items():
            child_place = None if place is None else f"{place}.{key}" if place else key
            child_path = None if path is None else f"{path}.{key}" if path else key
            plan.children[key] = cls.of_node(child, child_place, child_path)
        if node.wildcard is not None:
            plan.wildcard = cls.of_node(node.wildcard, None, None)
        if node.items is not None:
            item_place = None if place is None else place + "[]"
            plan.items = cls.of_node(node.items, item_place, None)
            plan.expected = "an array"
        plan.objects = bool(node.children or node.wildcard)
        return plan


class BoundarySanitizer:
    """Applies one boundary of a compiled policy to raw records."""

    def __init__(
        self,
        policy: CompiledPolicy,
        boundary: CompiledBoundary,
        observer: ScanObserver | None = None,
    ) -> None:
        self.policy = policy
        self.boundary = boundary
        self.scanner = policy.scanner
        self.observer = observer
        self.zone = boundary.source_zone.name
        self.max_bytes = policy.max_record_bytes
        self.max_depth = policy.max_depth
        self.tenant_path = policy.tenant_path
        self.subject_path = boundary.subject_path
        self.normalize_subject = boundary.subject_normalizer
        self.scan_small_ints = bool(policy.spec.dlp.custom)
        #: Field names the boundary's allow-list spells out (see _place).
        self.policy_names = frozenset(
            part for path, _ in boundary.allowed for part in re.split(r"\.|\[\]", path) if part
        )
        self.plan = _Plan.of_node(boundary.fields, "", "")
        self.key_plan = _Plan(boundary.key_rule, "$key")
        self.header_plans = {
            name: _Plan(rule, f"$headers.{name}") for name, rule in boundary.header_rules.items()
        }
        self.derived_plans = [_Plan(d.rule, ".".join(d.output)) for d in boundary.derived]
        self.lineage_static = [
            ("zoneapp-boundary", boundary.name.encode()),
            ("zoneapp-source-zone", boundary.source_zone.name.encode()),
            ("zoneapp-policy-version", policy.version.encode()),
            ("zoneapp-policy-hash", policy.digest.encode()),
        ]

    def hmac_purposes(self) -> set[tuple[str, str]]:
        """(zone, purpose) pairs the key ring must derive before the first record."""
        purposes = {
            (rule.transform.spec.zone, purpose)
            for rule in self.boundary.all_rules()
            for purpose in rule.transform.hmac_purposes
        }
        if self.subject_path is not None:
            purposes.add((self.zone, SUBJECT_PURPOSE))
        return purposes

    @property
    def needs_subject_keys(self) -> bool:
        """True when records carry a subject and some rule encrypts: keys are fetched per batch."""
        return self.subject_path is not None and any(
            r.name == "encrypt" for r in self.boundary.all_rules()
        )

    # -- entry points ------------------------------------------------------------------

    def sanitize(
        self,
        record: RawRecord,
        keyring: KeyRing,
        stored_tokens: KnownTokens = NO_KNOWN_TOKENS,
        subject_keys: Mapping[tuple[str, str], AESGCM] | None = None,
    ) -> Outcome:
        """Parse and sanitize one record (``parse`` then ``finish``)."""
        parsed = self.parse(record, keyring)
        if isinstance(parsed, Quarantine):
            return parsed
        return self.finish(parsed, keyring, stored_tokens, subject_keys)

    def parse(self, record: RawRecord, keyring: KeyRing) -> Parsed | Quarantine:
        """First phase: bytes to JSON, limits, tenant and subject."""
        try:
            doc = self._parse(record.value)
            tenant = self._tenant(doc) if doc is not None else ""
            binding = self.boundary.tenant_binding
            if doc is not None and binding is not None and not binding.allows(record.topic, tenant):
                assert self.tenant_path is not None
                raise _Blocked(Problem("tenant_mismatch", ".".join(self.tenant_path)))
            subject = None
            if doc is not None and self.subject_path is not None:
                subject = self._subject(doc, tenant, keyring)
        except _Blocked as blocked:
            return Quarantine([blocked.problem])
        return Parsed(record, doc, tenant, subject, self.boundary.key_tenant(record.topic))

    def finish(
        self,
        parsed: Parsed,
        keyring: KeyRing,
        stored_tokens: KnownTokens = NO_KNOWN_TOKENS,
        subject_keys: Mapping[tuple[str, str], AESGCM] | None = None,
    ) -> Outcome:
        """Second phase: field rules, key, headers, DLP scan, lineage."""
        record, doc = parsed.record, parsed.doc
        ctx = RecordContext(
            keyring=keyring,
            zone=self.zone,
            topic=self.boundary.destination,
            tenant=parsed.tenant,
            subject=parsed.subject,
            stored_tokens=stored_tokens,
        )
        if parsed.subject is not None and subject_keys:
            ctx.subject_aead = subject_keys.get((parsed.tenant, parsed.subject))
        scan: list[tuple[str, str]] = []
        self._suppressed = 0
        self._opaque: set[int] = set()
        # Concrete path -> the place in policy terms (see _place).
        self._places: dict[str, str] = {"$key": "$key"}
        try:
            out_value = None if doc is None else self._object(doc, self.plan, "", "", 1, ctx, scan)
            if doc is not None and self.boundary.derived:
                self._derive(doc, out_value, ctx, scan)
            out_key = self._key(record.key, self._key_context(parsed, ctx), scan)
            out_headers = self._headers(record.headers, ctx, scan)
        except _Blocked as blocked:
            return Quarantine([blocked.problem], ctx.applied)
        if scan:
            if self.observer is None:
                findings = self.scanner.scan(scan, self._opaque)
            else:
                started = time.time_ns()
                findings = self.scanner.scan(scan, self._opaque)
                self.observer.on_dlp_scanned(record, started, time.time_ns(), len(findings))
            if findings:
                places = [(self._place(f.path), f.detector) for f in findings]
                problems = [
                    Problem("dlp", place, detector)
                    for place, detector in dict.fromkeys(places)
                    if (place, detector) not in self.boundary.allowed
                ]
                if problems:
                    return Quarantine(problems, ctx.applied)
        try:
            value_bytes = None if out_value is None else orjson.dumps(out_value)
        except (TypeError, orjson.JSONEncodeError):
            return Quarantine(
                [Problem("invalid_value", detail="output is not serializable")], ctx.applied
            )
        out_headers.extend(self.lineage_static)
        out_headers.append(("zoneapp-source-topic", record.topic.encode()))
        out_headers.append(("zoneapp-source-partition", str(record.partition).encode()))
        out_headers.append(("zoneapp-source-offset", str(record.offset).encode()))
        out_headers.append(("zoneapp-record-id", record.record_id.encode()))
        return Forward(
            key=out_key,
            value=value_bytes,
            headers=out_headers,
            vault_entries=ctx.vault_entries,
            applied=ctx.applied,
            suppressed=self._suppressed,
        )

    # -- parsing -----------------------------------------------------------------------

    def _parse(self, value: bytes | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if len(value) > self.max_bytes:
            raise _Blocked(Problem("too_large", detail=f"record exceeds {self.max_bytes} bytes"))
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _Blocked(Problem("invalid_utf8", detail="value is not UTF-8")) from None
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            reason = "too_deep" if "depth" in str(exc) else "invalid_json"
            raise _Blocked(
                Problem(
                    reason, detail="value is not valid JSON" if reason == "invalid_json" else None
                )
            ) from None
        if not isinstance(doc, dict):
            raise _Blocked(Problem("wrong_type", detail="the record value must be a JSON object"))
        if (text.count("{") + text.count("[")) > self.max_depth and _too_deep(doc, self.max_depth):
            raise _Blocked(Problem("too_deep", detail=f"nesting deeper than {self.max_depth}"))
        return doc

    def _tenant(self, doc: dict[str, Any]) -> str:
        if self.tenant_path is None:
            return ""
        node: Any = doc
        for part in self.tenant_path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, bool) or not isinstance(node, str | int) or node == "":
            raise _Blocked(Problem("missing_tenant", ".".join(self.tenant_path)))
        tenant = str(node)
        if (
            len(tenant) > 128
            or not tenant.isprintable()
            or tenant == EMPTY_TENANT_TAG
            or not RESERVED_TENANT_CHARS.isdisjoint(tenant)
        ):
            raise _Blocked(
                Problem("invalid_value", ".".join(self.tenant_path), detail="bad tenant id")
            )
        return tenant

    def _subject(self, doc: dict[str, Any], tenant: str, keyring: KeyRing) -> str | None:
        assert self.subject_path is not None
        node: Any = doc
        for part in self.subject_path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, bool) or not isinstance(node, str | int) or node == "":
            return None
        subject = self.normalize_subject(str(node))
        if not subject:
            return None
        return subject_hash(keyring.hmac(self.zone, SUBJECT_PURPOSE), tenant, subject)

    # -- the value ---------------------------------------------------------------------

    def _object(
        self,
        obj: dict[str, Any],
        plan: _Plan,
        path: str,
        place: str,
        depth: int,
        ctx: RecordContext,
        scan: list[tuple[str, str]],
    ) -> dict[str, Any]:
        """``place``: where ``obj`` is, in policy terms ("" for the record value).

        The hot loop: the commonest steps (keep, suppress, a rule with a scalar result)
        are what :meth:`_apply`, :meth:`_run` and :meth:`_collect` would do, inlined."""
        out: dict[str, Any] = {}
        children = plan.children
        wildcard = plan.wildcard
        places = self._places
        applied = ctx.applied
        append = scan.append
        for key, value in obj.items():
            child = children.get(key)
            if child is not None:
                # A key the policy names is policy text.
                child_path = child.path
                if child_path is None:
                    child_path = f"{path}.{key}" if path else key
                child_place = child.place
                if child_place is None:
                    child_place = f"{place}.{key}" if place else key
                places[child_path] = child_place
            else:
                child_path = _member(path, key)
                # Any other key is the producer's, unless the allow-list spells it out.
                segment = key if key in self.policy_names else "*"
                child_place = places[child_path] = f"{place}.{segment}" if place else segment
                if wildcard is None:
                    if self.boundary.unclassified_blocks:
                        raise _Blocked(Problem("unclassified_field", child_place))
                    self._suppressed += 1
                    continue
                child = wildcard
                append((child_path, key))
            kind = child.kind
            if kind == _KEEP:
                applied["keep"] = applied.get("keep", 0) + 1
                out[key] = value
                result = value
            elif kind == _SUPPRESS:
                applied[child.name] = applied.get(child.name, 0) + 1
                continue
            elif kind == _RULE:
                try:
                    result = child.apply(value, ctx)
                except TransformTypeError as exc:
                    raise _Blocked(Problem("wrong_type", child_place, detail=str(exc))) from None
                except TokenCollisionError as exc:
                    raise _Blocked(
                        Problem("token_collision", child_place, detail=str(exc))
                    ) from None
                except (ValueError, OverflowError) as exc:
                    raise _Blocked(Problem("invalid_value", child_place, detail=str(exc))) from None
                applied[child.name] = applied.get(child.name, 0) + 1
                if result is SUPPRESS:
                    continue
                out[key] = result
                if child.opaque and type(result) is str:
                    self._opaque.add(len(scan))
            else:
                out[key] = self._apply(value, child, child_path, child_place, depth + 1, ctx, scan)
                continue
            # What _collect does with the output value.
            typ = type(result)
            if typ is str:
                append((child_path, result))
            elif typ is int:
                if self.scan_small_ints or not -_SMALL_INT < result < _SMALL_INT:
                    append((child_path, str(result)))
            elif typ is float:
                if result.is_integer() and abs(result) >= _EXACT_FLOAT:
                    raise _Blocked(Problem("invalid_value", child_place, detail=_INEXACT_NUMBER))
                append((child_path, repr(result).replace(".", ";")))
            elif result is not None and typ is not bool:
                self._collect(result, child_path, child_place, scan)
        return out

    def _apply(
        self,
        value: Any,
        plan: _Plan,
        path: str,
        place: str,
        depth: int,
        ctx: RecordContext,
        scan: list[tuple[str, str]],
    ) -> Any:
        if plan.kind != _NODE:
            result = self._run(plan, value, place, ctx)
            if type(result) is str:
                if plan.opaque:
                    self._opaque.add(len(scan))
                scan.append((path, result))
            elif result is not SUPPRESS:
                self._collect(result, path, place, scan)
            return result
        if value is None:
            return None
        if depth > self.max_depth:
            raise _Blocked(Problem("too_deep", place))
        if isinstance(value, dict) and plan.objects:
            return self._object(value, plan, path, place, depth, ctx, scan)
        items = plan.items
        if isinstance(value, list) and items is not None:
            out = []
            item_place = items.place if items.place is not None else place + "[]"
            places = self._places
            # Items that are objects of an object rule (``items[].sku``) go straight to
            # _object: what _apply would do with them one level down.
            objects = items.kind == _NODE and items.objects and depth < self.max_depth
            for i, item in enumerate(value):
                item_path = f"{path}[{i}]"
                places[item_path] = item_place
                if objects and type(item) is dict:
                    out.append(
                        self._object(item, items, item_path, item_place, depth + 1, ctx, scan)
                    )
                    continue
                result = self._apply(item, items, item_path, item_place, depth + 1, ctx, scan)
                if result is not SUPPRESS:
                    out.append(result)
            self._split_values(out, path, place, scan)
            return out
        raise _Blocked(Problem("wrong_type", place, detail=f"expected {plan.expected}"))

    def _run(self, plan: _Plan, value: Any, place: str, ctx: RecordContext) -> Any:
        """One rule's transform; its errors become the record's problem at ``place``."""
        applied = ctx.applied
        if plan.kind == _KEEP:
            applied["keep"] = applied.get("keep", 0) + 1
            return value
        try:
            result = plan.apply(value, ctx)
        except TransformTypeError as exc:
            raise _Blocked(Problem("wrong_type", place, detail=str(exc))) from None
        except TokenCollisionError as exc:
            raise _Blocked(Problem("token_collision", place, detail=str(exc))) from None
        except (ValueError, OverflowError) as exc:
            raise _Blocked(Problem("invalid_value", place, detail=str(exc))) from None
        applied[plan.name] = applied.get(plan.name, 0) + 1
        return result

    def _collect(self, value: Any, path: str, place: str, scan: list[tuple[str, str]]) -> None:
        """Queue every string and number of an output value for the DLP scan."""
        if isinstance(value, str):
            scan.append((path, value))
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int):
            if self.scan_small_ints or not -_SMALL_INT < value < _SMALL_INT:
                scan.append((path, str(value)))
        elif isinstance(value, float):
            if value.is_integer() and abs(value) >= _EXACT_FLOAT:
                # orjson reads integers beyond 64 bits as floats: the digits are gone.
                raise _Blocked(Problem("invalid_value", place, detail=_INEXACT_NUMBER))
            # The digits on both sides of the point are two numbers, never one card.
            scan.append((path, repr(value).replace(".", ";")))
        elif isinstance(value, dict):
            child_place = place + ".*"  # keys inside a kept value are the producer's
            places = self._places
            for k, v in value.items():
                child = _member(path, k)
                places[child] = child_place
                scan.append((child, k))
                self._collect(v, child, child_place, scan)
        elif isinstance(value, list):
            item_place = place + "[]"
            places = self._places
            for i, v in enumerate(value):
                item = f"{path}[{i}]"
                places[item] = item_place
                self._collect(v, item, item_place, scan)
            self._split_values(value, path, place, scan)

    def _split_values(
        self, values: list[Any], path: str, place: str, scan: list[tuple[str, str]]
    ) -> None:
        """A value split across adjacent short scalars of an array is scanned joined."""
        if len(values) > 1:
            self._places[f"{path}[]"] = place + "[]"
            for view in joined_views(values):
                scan.append((f"{path}[]", view))

    def _derive(
        self,
        doc: dict[str, Any],
        out: dict[str, Any] | None,
        ctx: RecordContext,
        scan: list[tuple[str, str]],
    ) -> None:
        assert out is not None
        for derived, plan in zip(self.boundary.derived, self.derived_plans, strict=True):
            node: Any = doc
            for part in derived.source:
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                continue
            path = ".".join(derived.output)
            self._places[path] = path  # the policy's own name
            result = self._run(plan, node, path, ctx)
            if result is SUPPRESS:
                continue
            self._collect(result, path, path, scan)
            target = out
            for part in derived.output[:-1]:
                nxt = target.get(part)
                if not isinstance(nxt, dict):
                    nxt = target[part] = {}
                target = nxt
            target[derived.output[-1]] = result

    # -- key and headers ---------------------------------------------------------------

    @staticmethod
    def _key_context(parsed: Parsed, ctx: RecordContext) -> RecordContext:
        """The record's context with the key's tenant; its subject only when the key is
        in the subject's tenant (then erasing the subject erases the key's token too)."""
        if parsed.key_tenant == ctx.tenant:
            return ctx
        return RecordContext(
            keyring=ctx.keyring,
            zone=ctx.zone,
            topic=ctx.topic,
            tenant=parsed.key_tenant,
            stored_tokens=ctx.stored_tokens,
            vault_entries=ctx.vault_entries,
            applied=ctx.applied,
        )

    def _key(
        self, key: bytes | None, ctx: RecordContext, scan: list[tuple[str, str]]
    ) -> bytes | None:
        if key is None:
            return None
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            raise _Blocked(Problem("invalid_utf8", "$key", detail="key is not UTF-8")) from None
        try:
            value: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = text
        # "$key" is registered first, but a field of that name may have taken it over.
        place = self._place("$key")
        plan = self.key_plan
        result = self._run(plan, value, place, ctx)
        if result is SUPPRESS or result is None:
            return None
        if type(result) is str and plan.opaque:
            self._opaque.add(len(scan))
        self._collect(result, "$key", place, scan)
        return orjson.dumps(result)

    def _headers(
        self, headers: Sequence[tuple[str, bytes]], ctx: RecordContext, scan: list[tuple[str, str]]
    ) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        plans = self.header_plans
        for name, raw in headers:
            lowered = name.lower()
            if lowered.startswith(LINEAGE_PREFIX):
                continue
            plan = plans.get(lowered)
            if plan is None:
                if self.boundary.unlisted_headers_block:
                    # An unlisted header's name is the producer's text.
                    raise _Blocked(Problem("unlisted_header", "$headers.*"))
                self._suppressed += 1
                continue
            path = f"$headers.{lowered}"
            self._places[path] = path  # a header the policy names
            if raw is None:
                out.append((name, b""))
                continue
            try:
                text = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                raise _Blocked(
                    Problem("invalid_utf8", path, detail="header is not UTF-8")
                ) from None
            result = self._run(plan, text, path, ctx)
            if result is SUPPRESS or result is None:
                continue
            out_text = result if isinstance(result, str) else orjson.dumps(result).decode()
            if plan.opaque:
                self._opaque.add(len(scan))
            scan.append((path, out_text))
            out.append((name, out_text.encode("utf-8")))
        return out

    def _place(self, path: str) -> str:
        """Where ``path`` is, in policy terms: the rule path, with ``[]`` for array
        items and ``*`` for every key the policy does not name.

        Field names come from the producer (``notes: {"ssn 219456789": ...}``), so no
        violation, log line or table row repeats one: a path the traversal did not
        register is shown as ``*``.
        """
        return self._places.get(path, "*")
