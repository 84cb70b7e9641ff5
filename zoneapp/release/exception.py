"""A boundary with one release exception applied, built once per release.

The exception changes one thing and nothing else: ``allow`` adds one (place, detector)
pair to the boundary's DLP allow-list (the same list the policy's ``allow`` fills, so a
detector still blocks on every other path, and every other detector still blocks on this
one); ``transform`` puts one sanitizing rule at one field path of a copy of the rule tree
(``keep`` is refused, and so is a transform that would copy the value, as the policy
loader refuses it). Default-deny, the key and header rules, tenant checks and the DLP scan
of every output are the boundary's own.

The policy with the changed boundary must pass the flow proof (``zoneapp.policy.flow``,
as ``check-policy`` requires): a transform exception declares its field at the source
zone's class, and a boundary downstream that keeps that field would move it, unsanitized,
into a lower zone. An exception whose policy the proof refuses is ``bad_exception``, at
the request and again when the release runs (the policy may have changed in between).
"""

from __future__ import annotations

import dataclasses

from zoneapp.policy.compiled import (
    ITEMS,
    WILDCARD,
    CompiledBoundary,
    CompiledPolicy,
    CompiledRule,
    RuleNode,
)
from zoneapp.policy.errors import ParamError
from zoneapp.policy.flow import prove_flow
from zoneapp.policy.loader import parse_path
from zoneapp.release.model import ReleaseError, ReleaseException
from zoneapp.transforms import TransformSpec, build_transform


def _copy(node: RuleNode) -> RuleNode:
    return RuleNode(
        rule=node.rule,
        children={k: _copy(v) for k, v in node.children.items()},
        wildcard=_copy(node.wildcard) if node.wildcard is not None else None,
        items=_copy(node.items) if node.items is not None else None,
    )


def detectors_of(policy: CompiledPolicy) -> set[str]:
    dlp = policy.spec.dlp
    return set(dlp.detectors) | {c.name for c in dlp.custom}


def with_exception(
    policy: CompiledPolicy, boundary: CompiledBoundary, exception: ReleaseException
) -> CompiledBoundary:
    """``boundary`` with ``exception``; ReleaseError (``bad_exception``) when it cannot be,
    or when the policy with it fails the flow proof (module docstring)."""
    variant = _apply(policy, boundary, exception)
    changed = dataclasses.replace(
        policy,
        boundaries=[variant if b.name == boundary.name else b for b in policy.boundaries],
    )
    try:
        proof = prove_flow(changed)
    except Exception as exc:  # a proof that cannot be made does not hold
        raise ReleaseError(
            "bad_exception", f"the flow proof could not run ({type(exc).__name__})"
        ) from None
    if not proof.ok:
        # A fixed text: the proof's own names the exception's path (the caller's text).
        raise ReleaseError(
            "bad_exception",
            "the policy with this exception fails the flow proof: a field would reach a "
            "lower zone unsanitized through a boundary downstream (check-policy explains)",
        )
    return variant


def _apply(
    policy: CompiledPolicy, boundary: CompiledBoundary, exception: ReleaseException
) -> CompiledBoundary:
    if exception.kind == "allow":
        assert exception.detector is not None
        if exception.detector not in detectors_of(policy):
            raise ReleaseError("bad_exception", "the detector is not enabled in the policy")
        pair = (exception.path, exception.detector)
        return dataclasses.replace(boundary, allowed=boundary.allowed | {pair})
    assert exception.transform is not None
    if exception.path.startswith("$"):
        raise ReleaseError("bad_exception", "a transform exception names a field of the value")
    try:
        parts = parse_path(exception.path)
    except ParamError:
        raise ReleaseError("bad_exception", "the path is not a field path") from None
    field_class = "".join(c if c.isalnum() else "_" for c in parts[-1] if parts[-1] != ITEMS)
    try:
        transform = build_transform(
            exception.transform,
            exception.params,
            TransformSpec(
                rule_path=exception.path,
                field_class=field_class or "value",
                zone=boundary.source_zone.name,
            ),
        )
    except ParamError:
        # A fixed text: a parameter error may quote the caller's parameter.
        raise ReleaseError(
            "bad_exception", "the transform's parameters are not valid (as check-policy checks)"
        ) from None
    if transform.reproduces_value() is not None:
        raise ReleaseError("bad_exception", "the transform would copy the value across")
    rule = CompiledRule(path=exception.path, transform=transform, level=boundary.source_zone.level)
    root = _copy(boundary.fields)
    node = root
    for part in parts[:-1]:
        if node.rule is not None:
            raise ReleaseError("bad_exception", "the path is inside a field that has a rule")
        if part == ITEMS:
            node.items = node.items or RuleNode()
            node = node.items
        elif part == WILDCARD:
            node.wildcard = node.wildcard or RuleNode()
            node = node.wildcard
        else:
            node = node.children.setdefault(part, RuleNode())
    if node.rule is not None:
        raise ReleaseError("bad_exception", "the path is inside a field that has a rule")
    leaf = RuleNode(rule=rule)
    last = parts[-1]
    if last == ITEMS:
        node.items = leaf
    elif last == WILDCARD:
        node.wildcard = leaf
    else:
        node.children[last] = leaf
    derived = [d for d in boundary.derived if ".".join(d.output) != exception.path]
    return dataclasses.replace(boundary, fields=root, derived=derived)
