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


FLOW = """
version: "flow-7"
tenant_id: tenant_id
security_topic: security.violations
zones:
  - {name: restricted, level: restricted}
  - {name: confidential, level: confidential}
  - {name: public, level: public}
dlp: {detectors: [CREDIT_CARD, US_SSN]}
boundaries:
  - name: a
    source: restricted.hr
    destination: confidential.hr
    unclassified: block
    fields:
      tenant_id: {transform: keep, class: public}
      note: {transform: keep, class: confidential}
  - name: b
    source: confidential.hr
    destination: public.hr
    fields:
      tenant_id: {transform: keep, class: public}
      ssn: {transform: keep, class: public}
"""


def test_an_exception_opening_a_path_the_flow_proof_refuses_is_refused(tmp_path: Path) -> None:
    from zoneapp.policy.flow import prove_flow

    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    flow = load_policy(path)
    assert prove_flow(flow).ok  # the policy itself holds
    # ssn enters a at restricted; generalized it reaches confidential.hr, where b keeps it
    # into public.hr: the proof refuses the policy with this exception.
    exc = ReleaseException(
        "transform", "ssn", transform="generalize", params={"to": "prefix", "length": 4}
    )
    with pytest.raises(ReleaseError) as refused:
        with_exception(flow, flow.boundary("a"), exc)
    assert refused.value.code == "bad_exception"
    assert "flow proof" in str(refused.value)
    # Suppressing it opens nothing: allowed.
    fine = ReleaseException("transform", "ssn", transform="suppress")
    assert with_exception(flow, flow.boundary("a"), fine).name == "a"
