"""The policy loader: the example policy compiles, and bad policies are refused with
the file, the place and the problem in the message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from zoneapp.policy import Level, PolicyError, compile_policy_text, load_policy, parse_path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "policies" / "ecommerce.yaml"

BASE = """\
version: "1"
zones:
  - {name: restricted, level: restricted}
  - {name: confidential, level: confidential}
  - {name: public, level: public}
boundaries:
  - name: pay
    source: restricted.payments
    destination: confidential.payments
    fields:
      card: {transform: tokenize, class: restricted, format: card}
      amount: {transform: keep, class: confidential}
"""


def compile_yaml(text: str) -> object:
    return compile_policy_text(textwrap.dedent(text).encode(), "test.yaml")


def errors_of(text: str) -> str:
    with pytest.raises(PolicyError) as info:
        compile_yaml(text)
    return str(info.value)


def test_example_policy_compiles_with_its_three_flows() -> None:
    policy = load_policy(EXAMPLE)
    flows = {(b.sources, b.destination) for b in policy.boundaries}
    assert (("restricted.payments",), "confidential.payments") in flows
    assert (("restricted.user-pii",), "confidential.user-profiles") in flows
    assert any(b.destination_zone.level == Level.PUBLIC for b in policy.boundaries)
    assert len(policy.digest) == 64
    assert "restricted.quarantine" in policy.topics()
    assert "security.violations" in policy.topics()


def test_digest_changes_with_content() -> None:
    a = compile_policy_text(BASE.encode())
    b = compile_policy_text(BASE.replace('"1"', '"2"').encode())
    assert a.digest != b.digest


def test_missing_file_is_named() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy("/nonexistent/policy.yaml")
    assert "/nonexistent/policy.yaml" in str(info.value)


def test_yaml_syntax_error_gives_line() -> None:
    msg = errors_of(BASE + "  - name: [unclosed\n")
    assert "test.yaml" in msg and "line" in msg


def test_unknown_transform_names_place_and_line() -> None:
    msg = errors_of(BASE.replace("transform: tokenize", "transform: tokenise"))
    assert "test.yaml" in msg
    assert "boundaries[0].fields.card" in msg
    assert "unknown transform 'tokenise'" in msg
    assert "line 11" in msg


def test_upward_boundary_refused() -> None:
    msg = errors_of(
        BASE.replace("source: restricted.payments", "source: public.payments").replace(
            "card: {transform: tokenize, class: restricted, format: card}", "card: suppress"
        )
    )
    assert "boundary goes up" in msg and "boundaries[0].destination" in msg


def test_keep_above_destination_refused() -> None:
    msg = errors_of(
        BASE.replace(
            "amount: {transform: keep, class: confidential}",
            "amount: {transform: keep, class: restricted}",
        )
    )
    assert "boundaries[0].fields.amount" in msg and "'keep'" in msg


def test_keep_without_class_is_as_sensitive_as_source() -> None:
    msg = errors_of(BASE.replace("amount: {transform: keep, class: confidential}", "amount: keep"))
    assert "unclassified, so taken as restricted" in msg


def test_topic_outside_any_zone_refused() -> None:
    msg = errors_of(BASE.replace("destination: confidential.payments", "destination: payments"))
    assert "belongs to no zone" in msg


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("{transform: mask, keep_last: -1}", "'keep_last' must be an integer"),
        ("{transform: mask, char: 'ab'}", "'char' must be one character"),
        ("{transform: mask, colour: red}", "unknown parameter(s) colour"),
        ("{transform: generalize, to: decade}", "'to' must be one of"),
        ("{transform: tokenize, format: iban}", "'format' must be one of"),
        ("{transform: hash, class: secret}", "unknown classification 'secret'"),
    ],
)
def test_bad_parameters_refused_at_load(rule: str, expected: str) -> None:
    msg = errors_of(BASE.replace("{transform: tokenize, class: restricted, format: card}", rule))
    assert expected in msg
    assert "boundaries[0].fields.card" in msg


def test_all_problems_are_reported_together() -> None:
    msg = errors_of(
        BASE.replace("transform: tokenize", "transform: nope").replace(
            "amount: {transform: keep, class: confidential}",
            "amount: {transform: keep, class: restricted}",
        )
    )
    assert "unknown transform 'nope'" in msg and "'keep' would move" in msg


def test_unknown_top_level_key_refused() -> None:
    msg = errors_of(BASE + "colour: red\n")
    assert "colour" in msg and "Extra inputs are not permitted" in msg


def test_overlapping_rules_refused() -> None:
    msg = errors_of(BASE + "      card.number: suppress\n")
    assert "inside 'card'" in msg


def test_unknown_dlp_detector_refused() -> None:
    msg = errors_of(BASE + "dlp:\n  detectors: [CREDIT_CARD, PASSPORT]\n")
    assert "PASSPORT" in msg


def test_bad_custom_regex_refused() -> None:
    msg = errors_of(BASE + "dlp:\n  custom:\n    - {name: BAD, pattern: '(unclosed'}\n")
    assert "BAD" in msg


def test_sources_in_two_zones_refused() -> None:
    msg = errors_of(
        BASE.replace("source: restricted.payments", "source: [restricted.payments, confidential.x]")
    )
    assert "all sources must be in one zone" in msg


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("a", ["a"]),
        ("billing.iban", ["billing", "iban"]),
        ("items[].card", ["items", "[]", "card"]),
        ("m[][]", ["m", "[]", "[]"]),
        ("attrs.*", ["attrs", "*"]),
    ],
)
def test_parse_path(path: str, parts: list[str]) -> None:
    assert parse_path(path) == parts


@pytest.mark.parametrize("path", ["", "a..b", "a[0]", "a[]x", " a"])
def test_parse_path_refuses(path: str) -> None:
    with pytest.raises(ValueError):
        parse_path(path)


def test_dlp_options_from_the_policy() -> None:
    policy = compile_yaml(
        BASE
        + """\
dlp:
  detectors: [PHONE]
  phone_regions: [JP]
  custom:
    - {name: PROJECT, pattern: "project falcon", ignore_case: true}
"""
    )
    scanner = policy.scanner  # type: ignore[attr-defined]
    assert scanner.scan_text("Project FALCON") == ["PROJECT"]
    assert scanner.scan_text("03-1234-5678") == ["PHONE"]  # JP national format
    assert scanner.scan_text("09-7625400") == []  # IL national: IL is not listed


def test_unknown_phone_region_refused() -> None:
    message = errors_of(BASE + "dlp:\n  phone_regions: [US, ZZ]\n")
    assert "dlp" in message and "ZZ" in message


# -- issue 8 ---------------------------------------------------------------------------------


def zones_policy(zones: str, extra: str = "") -> str:
    return f"""\
version: "1"
{extra}
zones:
{zones}
boundaries:
  - name: pay
    source: payments.card
    destination: public.payments
    fields:
      amount: {{transform: keep, class: public}}
"""


@pytest.mark.parametrize(
    ("zones", "extra", "problem"),
    [
        # item 16: nested prefixes put the restricted quarantine into the public zone.
        (
            "  - {name: restricted, level: restricted, topic_prefix: 'payments.'}\n"
            "  - {name: public, level: public, topic_prefix: 'payments.q'}\n",
            "",
            "nested",
        ),
        (
            "  - {name: restricted, level: restricted, topic_prefix: 'payments.'}\n"
            "  - {name: public, level: public, topic_prefix: 'payments.quarantine'}\n",
            "",
            "nested",
        ),
        (
            "  - {name: restricted, level: restricted, topic_prefix: 'payments.'}\n"
            "  - {name: public, level: public, topic_prefix: ''}\n",
            "",
            "topic_prefix",
        ),
        # The security topic inside the public zone: violation events of restricted data.
        (
            "  - {name: restricted, level: restricted, topic_prefix: 'payments.'}\n"
            "  - {name: public, level: public, topic_prefix: 'public.'}\n",
            "security_topic: public.violations",
            "the security topic 'public.violations' belongs to zone 'public'",
        ),
        (
            "  - {name: restricted, level: restricted, topic_prefix: 'payments.'}\n"
            "  - {name: public, level: public, topic_prefix: 'audit.'}\n",
            "",
            "the audit topic 'audit.access' belongs to zone 'public'",
        ),
        (
            "  - {name: restricted, level: restricted, topic_prefix: 'payments.'}\n"
            "  - {name: public, level: public, topic_prefix: 'public.'}\n",
            "quarantine_suffix: ''",
            "quarantine_suffix",
        ),
    ],
)
def test_operational_topics_never_fall_into_a_lower_zone(
    zones: str, extra: str, problem: str
) -> None:
    text = zones_policy(zones, extra)
    if "'public.'" not in zones:  # a destination inside that policy's public zone
        public = "audit.payments" if "'audit.'" in zones else "payments.qpublic"
        text = text.replace("destination: public.payments", f"destination: {public}")
    assert problem in errors_of(text)


def test_operational_topics_in_a_high_zone_or_no_zone_are_accepted() -> None:
    zones = (
        "  - {name: restricted, level: restricted, topic_prefix: 'payments.'}\n"
        "  - {name: security, level: restricted, topic_prefix: 'security.'}\n"
        "  - {name: public, level: public, topic_prefix: 'public.'}\n"
    )
    policy = compile_yaml(zones_policy(zones))
    assert policy.zone_of_topic("security.violations").name == "security"  # type: ignore[attr-defined]
    assert policy.zone_of_topic("audit.access") is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        # item 13: transforms that copy a restricted value into the public zone.
        ("{transform: generalize, class: restricted, to: prefix, length: 64}", "64 leading"),
        (
            "{transform: generalize, class: restricted, to: bucket, width: 1, min: 0, max: 10}",
            "width 1",
        ),
        (
            "{transform: generalize, class: restricted, to: bucket, width: 10, min: 0, "
            "max: 10000000000000000}",
            "buckets",
        ),
    ],
)
def test_transforms_that_reproduce_a_value_are_refused_above_the_destination(
    rule: str, problem: str
) -> None:
    text = BASE.replace("destination: confidential.payments", "destination: public.payments")
    text = text.replace("amount: {transform: keep, class: confidential}", f"card_digits: {rule}")
    errors = errors_of(text)
    assert problem in errors and "restricted field into 'public'" in errors
    # The same rule on a field classified at the destination's level is the owner's choice.
    fine = text.replace("class: restricted, to:", "class: public, to:")
    compile_yaml(fine)


@pytest.mark.parametrize(
    "key",
    ["{transform: encrypt}", "{transform: tokenize, mode: random}"],
)
def test_key_transforms_must_be_deterministic(key: str) -> None:
    text = BASE.replace("    fields:\n", f"    key: {key}\n    fields:\n", 1)
    assert "not deterministic" in errors_of(text)


TENANT_BASE = BASE.replace('version: "1"\n', 'version: "1"\ntenant_id: tenant_id\n').replace(
    "    source: restricted.payments\n",
    "    source: [restricted.payments.acme, restricted.payments.shared]\n",
)


def test_tenant_bindings_compile_per_source_topic() -> None:
    text = TENANT_BASE.replace(
        "    fields:\n",
        "    tenants:\n"
        "      restricted.payments.acme: [acme]\n"
        "      restricted.payments.shared: [globex, initech]\n"
        "    fields:\n",
        1,
    )
    b = compile_yaml(text).boundaries[0]  # type: ignore[attr-defined]
    assert b.tenant_binding.allows("restricted.payments.acme", "acme")
    assert not b.tenant_binding.allows("restricted.payments.acme", "globex")
    assert not b.tenant_binding.allows("restricted.payments.other", "acme")
    assert b.key_tenant("restricted.payments.acme") == "acme"
    assert b.key_tenant("restricted.payments.shared") == ""
    pattern = TENANT_BASE.replace("restricted.payments.shared", "restricted.payments.globex")
    pattern = pattern.replace(
        "    fields:\n", "    tenants: 'restricted.payments.{tenant}'\n    fields:\n", 1
    )
    b = compile_yaml(pattern).boundaries[0]  # type: ignore[attr-defined]
    assert b.tenant_binding.by_topic == {
        "restricted.payments.acme": frozenset({"acme"}),
        "restricted.payments.globex": frozenset({"globex"}),
    }


@pytest.mark.parametrize(
    ("tenants", "problem"),
    [
        ("'restricted.payments.{tenant}.{tenant}'", "exactly one '{tenant}'"),
        ("'restricted.orders.{tenant}'", "does not match"),
        ("{restricted.payments.acme: [acme]}", "has no tenant list"),
        (
            "{restricted.payments.acme: [acme], restricted.payments.shared: [], x.y: [a]}",
            "list one tenant id or more",
        ),
        ("{restricted.payments.acme: [acme], restricted.payments.shared: ['_']}", "reserved"),
    ],
)
def test_bad_tenant_bindings_are_refused(tenants: str, problem: str) -> None:
    text = TENANT_BASE.replace("    fields:\n", f"    tenants: {tenants}\n    fields:\n", 1)
    assert problem in errors_of(text)
    no_tenant_id = BASE.replace("    fields:\n", "    tenants: 'x.{tenant}'\n    fields:\n", 1)
    assert "needs the policy's tenant_id" in errors_of(no_tenant_id)
