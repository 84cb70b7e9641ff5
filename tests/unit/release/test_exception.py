"""One release exception on a copy of the boundary (zoneapp.release.exception)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.release.exception import with_exception
from zoneapp.release.model import ReleaseError, ReleaseException

POLICY = Path(__file__).parents[2] / "component" / "web" / "policy.yaml"


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy(POLICY)


def test_allow_adds_one_pair_and_leaves_the_policy_alone(policy: CompiledPolicy) -> None:
    boundary = policy.boundary("orders-to-confidential")
    before = boundary.allowed
    variant = with_exception(policy, boundary, ReleaseException("allow", "notes", "PHONE"))
    assert variant.allowed == before | {("notes", "PHONE")}
    assert boundary.allowed == before and variant.fields is boundary.fields


def test_transform_replaces_one_rule_on_a_copy(policy: CompiledPolicy) -> None:
    boundary = policy.boundary("orders-to-confidential")
    exc = ReleaseException("transform", "notes", transform="suppress")
    variant = with_exception(policy, boundary, exc)
    assert variant.fields.children["notes"].rule.name == "suppress"  # type: ignore[union-attr]
    assert boundary.fields.children["notes"].rule.name == "keep"  # type: ignore[union-attr]
    assert variant.allowed == boundary.allowed
    # Every other rule is the policy's own.
    assert variant.fields.children["customer"].children["email"].rule is (
        boundary.fields.children["customer"].children["email"].rule
    )


@pytest.mark.parametrize(
    "exc",
    [
        ReleaseException("allow", "notes", "US_SSN"),  # not enabled in this policy
        ReleaseException("transform", "customer.email.local", transform="mask"),  # inside a rule
        ReleaseException("transform", "$key", transform="mask"),
        ReleaseException("transform", "notes", transform="mask", params={"keep_last": 999}),
        ReleaseException("transform", "notes", transform="mask", params={"nope": 1}),
        ReleaseException("transform", "a..b", transform="suppress"),
        # Valid parameters, but the output would copy the value (the loader's own check).
        ReleaseException(
            "transform", "notes", transform="generalize", params={"to": "prefix", "length": 40}
        ),
    ],
)
def test_exceptions_that_cannot_apply_are_refused(
    policy: CompiledPolicy, exc: ReleaseException
) -> None:
    boundary = policy.boundary("orders-to-confidential")
    with pytest.raises(ReleaseError) as refused:
        with_exception(policy, boundary, exc)
    assert refused.value.code == "bad_exception"
    assert "999" not in str(refused.value)
