"""``ingress:`` in the policy: schemas load once or the policy is refused, failures are
value-free, and check-policy shows what default-deny will drop."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.ingress import BOUNDARY, SCHEMA, ingress_policy, payment_schema, write_policy
from tests.records import payment
from zoneapp.commands import check_policy_file
from zoneapp.policy import PolicyError, load_policy
from zoneapp.policy.ingress import load_schema, unnamed_fields
from zoneapp.stack.demo import make_payment

SCHEMA_FILE = "schemas/payment.schema.json"


def test_the_shipped_schema_accepts_every_bench_payment_record() -> None:
    """The README's example schema, on what the bench and the demo produce."""
    shipped = Path(__file__).resolve().parents[3] / "deploy" / "policies" / "schemas"
    schema = load_schema("payment.schema.json", shipped)
    rng = random.Random(7)
    docs = [orjson.loads(json.dumps(make_payment(rng)[1])) for _ in range(2000)]
    assert all(schema.is_valid(d) for d in docs)
    assert schema.allowed == load_schema(SCHEMA.name, SCHEMA.parent).allowed


def test_a_schema_is_compiled_once_per_file_and_per_topic(tmp_path: Path) -> None:
    policy = ingress_policy(tmp_path, {"schema": SCHEMA_FILE})
    ingress = policy.boundary(BOUNDARY).ingress
    assert ingress is not None and ingress.rate_limit is None
    schema = ingress.schemas["restricted.payments"]
    assert schema is not None and schema.is_valid(payment())
    assert schema.file == tmp_path / SCHEMA_FILE
    assert policy.boundary("user-pii-to-confidential").ingress is None


def test_the_schema_path_is_relative_to_the_policy_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_policy(tmp_path / "p", {"schema": SCHEMA_FILE}, {SCHEMA_FILE: payment_schema()})
    monkeypatch.chdir(tmp_path)
    assert load_policy(path).boundary(BOUNDARY).ingress is not None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read it: No such file or directory"),
        ('{"type": ', "not JSON (line 1, column 10"),
        ('{"type": "strin"}', "not a valid JSON Schema at /type"),
        ('{"minimum": "three"}', "not a valid JSON Schema at /minimum"),
        ("[1, 2]", "a JSON Schema is an object"),
        ('{"$ref": "https://schemas.example/payment.json"}', "points outside the file"),
        ('{"properties": {"a": {"$ref": "other.json#/a"}}}', "points outside the file"),
        ('{"$ref": "#/$defs/missing"}', "Pointer '/$defs/missing' does not exist"),
    ],
)
def test_a_schema_that_does_not_load_refuses_the_policy_with_file_and_problem(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    schemas = {} if content is None else {"bad.json": content}
    path = write_policy(tmp_path, {"schema": "bad.json"}, schemas)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    text = str(caught.value)
    assert "boundaries[0].ingress.schema" in text and "line " in text
    assert str(tmp_path / "bad.json") in text and problem in text
    ok, _, errors = check_policy_file(str(path))
    assert not ok and problem in errors


def test_per_topic_schemas_must_name_every_source_and_only_sources(tmp_path: Path) -> None:
    schemas = {SCHEMA_FILE: payment_schema()}
    missing = write_policy(tmp_path / "a", {"schema": {"restricted.other": SCHEMA_FILE}}, schemas)
    with pytest.raises(PolicyError) as caught:
        load_policy(missing)
    assert "'restricted.other' is not a source" in str(caught.value)
    assert "source 'restricted.payments' has no schema entry" in str(caught.value)
    # null: explicitly no schema for that source.
    explicit = write_policy(tmp_path / "b", {"schema": {"restricted.payments": None}}, schemas)
    assert load_policy(explicit).boundary(BOUNDARY).ingress is None


def test_failures_name_keyword_and_places_never_values(tmp_path: Path) -> None:
    schema = load_schema(SCHEMA.name, SCHEMA.parent)
    doc: dict[str, Any] = payment(amount=-129.95, currency="euro-secret")
    doc["items"][1]["quantity"] = 0
    doc["customer"]["jane.doe@example.com"] = "her-value"  # a key that is data
    doc["ssn-of-jane"] = "219-45-6789"
    failures = schema.failures(doc)
    places = {(f.keyword, f.schema_path, f.instance_path, f.field_path) for f in failures}
    assert places == {
        ("minimum", "/properties/amount/minimum", "/amount", "amount"),
        ("pattern", "/properties/currency/pattern", "/currency", "currency"),
        (
            "minimum",
            "/properties/items/items/properties/quantity/minimum",
            "/items/1/quantity",
            "items[].quantity",
        ),
        (
            "additionalProperties",
            "/properties/customer/additionalProperties",
            "/customer",
            "customer",
        ),
        ("additionalProperties", "/additionalProperties", "", "$value"),
    }
    text = repr(failures)
    for value in ("129.95", "euro-secret", "jane.doe", "her-value", "ssn-of-jane", "219-45"):
        assert value not in text


def test_an_undeclared_key_in_the_instance_path_is_a_star(tmp_path: Path) -> None:
    """A key the schema does not declare may be data (an e-mail as a map key)."""
    schema_doc = {
        "type": "object",
        "properties": {"tags": {"type": "object", "additionalProperties": {"type": "integer"}}},
    }
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "tags.json").write_text(json.dumps(schema_doc))
    schema = load_schema("tags.json", folder)
    (failure,) = schema.failures({"tags": {"jane.doe@example.com": "x"}})
    assert failure.instance_path == "/tags/*" and failure.field_path == "tags.*"
    assert failure.schema_path == "/properties/tags/additionalProperties/type"
    assert failure.keyword == "type"


def test_formats_are_asserted() -> None:
    schema = load_schema(SCHEMA.name, SCHEMA.parent)
    (failure,) = schema.failures(payment(created_at="yesterday"))
    assert (failure.keyword, failure.field_path) == ("format", "created_at")


def test_allowed_fields_no_rule_names_are_listed(tmp_path: Path) -> None:
    policy = ingress_policy(tmp_path, {"schema": SCHEMA_FILE})
    boundary = policy.boundary(BOUNDARY)
    assert boundary.ingress is not None
    schema = boundary.ingress.schemas["restricted.payments"]
    assert schema is not None
    assert unnamed_fields(schema, boundary.fields) == [
        "device_fingerprint",
        "ip_address",
        "risk_score",
        "user_agent",
    ]
    ok, text, errors = check_policy_file(str(tmp_path / "policy.yaml"))
    assert ok, errors
    assert f"schema of restricted.payments: {SCHEMA_FILE}" in text
    assert (
        "allowed by the schema but named by no rule (dropped): "
        "device_fingerprint, ip_address, risk_score, user_agent"
    ) in text


@pytest.mark.parametrize(
    ("schema_doc", "unnamed"),
    [
        # An open object: any other key is allowed, and no wildcard rule covers it.
        (
            {"type": "object", "properties": {"amount": {"type": "number"}}},
            ["*"],
        ),
        # Nested, through $ref, arrays and a combinator.
        (
            {
                "type": "object",
                "additionalProperties": False,
                "$defs": {"line": {"type": "object", "properties": {"sku": {}, "gift": {}}}},
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/$defs/line"}},
                    "customer": {
                        "type": "object",
                        "unevaluatedProperties": False,
                        "anyOf": [{"properties": {"email": {}, "loyalty_id": {}}}],
                    },
                },
            },
            ["customer.loyalty_id", "items[].*", "items[].gift"],
        ),
    ],
)
def test_unnamed_fields_follow_refs_arrays_and_open_objects(
    tmp_path: Path, schema_doc: dict[str, Any], unnamed: list[str]
) -> None:
    path = write_policy(tmp_path, {"schema": "s.json"}, {"s.json": schema_doc})
    boundary = load_policy(path).boundary(BOUNDARY)
    assert boundary.ingress is not None
    schema = boundary.ingress.schemas["restricted.payments"]
    assert schema is not None
    assert unnamed_fields(schema, boundary.fields) == unnamed


def test_the_rate_limit_is_compiled_with_its_defaults(tmp_path: Path) -> None:
    policy = ingress_policy(tmp_path, {"rate_limit": {"rate": 50, "burst": 100}})
    ingress = policy.boundary(BOUNDARY).ingress
    assert ingress is not None and ingress.rate_limit is not None
    limit = ingress.rate_limit
    assert (limit.rate, limit.burst, limit.per, limit.over_limit, limit.max_buckets) == (
        50,
        100,
        "tenant",
        "delay",
        10_000,
    )
    # per tenant: the tenant bucket is the limit itself; 10 new buckets; waits up to 60 s.
    assert (limit.tenant_rate, limit.tenant_burst, limit.new_buckets, limit.max_wait) == (
        50,
        100,
        10,
        60.0,
    )
    ok, text, _ = check_policy_file(str(tmp_path / "policy.yaml"))
    assert (
        ok
        and (
            "rate limit: 50/s, burst 100, per tenant, over the limit: delay (at most 60s), "
            "at most 10000 buckets, 10 new per refill"
        )
        in text
    )


def test_a_per_key_limit_has_its_tenant_limit(tmp_path: Path) -> None:
    policy = ingress_policy(
        tmp_path,
        {
            "rate_limit": {
                "rate": 5,
                "burst": 10,
                "per": "tenant_and_key",
                "tenant_rate": 50,
                "tenant_burst": 100,
            }
        },
    )
    ingress = policy.boundary(BOUNDARY).ingress
    assert ingress is not None and ingress.rate_limit is not None
    assert (ingress.rate_limit.tenant_rate, ingress.rate_limit.tenant_burst) == (50, 100)
    ok, text, _ = check_policy_file(str(tmp_path / "policy.yaml"))
    assert ok and "5/s, burst 10, per tenant and key, within 50/s, burst 100 per tenant" in text


@pytest.mark.parametrize(
    "limit",
    [
        {"rate": 0, "burst": 1},
        {"rate": 10, "burst": 0},
        {"rate": 10, "burst": 5, "over_limit": "drop"},
        {"rate": 10, "burst": 5, "per": "key"},
        {"rate": 10, "burst": 5, "max_buckets": 0},
        {"burst": 5},
        {"rate": 10, "burst": 5, "per": "tenant_and_key"},  # no tenant limit
        {"rate": 10, "burst": 5, "per": "tenant_and_key", "tenant_rate": 10},
        {"rate": 10, "burst": 5, "tenant_rate": 10, "tenant_burst": 5},  # per tenant
        {"rate": 10, "burst": 5, "new_buckets": 0},
        {"rate": 10, "burst": 5, "max_wait": 0},
    ],
)
def test_a_bad_rate_limit_is_refused(tmp_path: Path, limit: dict[str, Any]) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(tmp_path, {"rate_limit": limit}))
    assert "boundaries[0].ingress.rate_limit" in str(caught.value)


def test_the_validator_bench_runs_on_the_bench_records() -> None:
    """``python -m bench.schema`` (README figures): jsonschema-rs accepts every bench record
    and rejects every broken one (asserted inside), and reports its three figures."""
    from bench.schema import figures

    measured = figures(records=100, repeat=1)
    assert set(measured["jsonschema-rs"]) == {"compile_ms", "valid_us", "invalid_us"}
    assert all(v > 0 for v in measured["jsonschema-rs"].values())


def test_at_most_five_failures_are_reported_per_record() -> None:
    schema = load_schema(SCHEMA.name, SCHEMA.parent)
    doc = payment(items=[{"sku": 1, "quantity": "x", "price": "y"} for _ in range(4)])
    failures = schema.failures(doc)
    assert len(failures) == 5
    assert all(f.field_path.startswith("items[].") for f in failures)
