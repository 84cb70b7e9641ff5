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
