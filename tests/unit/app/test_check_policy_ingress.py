"""`faust -A zoneapp check-policy` on a policy with ``ingress:``, as a user runs it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from tests.ingress import payment_schema, write_policy

from .test_check_policy_command import REPO, run

SCHEMA = "schemas/payment.schema.json"


def test_check_policy_lists_what_default_deny_drops_and_the_rate_limit(tmp_path: Path) -> None:
    ingress = {
        "schema": SCHEMA,
        "rate_limit": {"rate": 100, "burst": 200, "over_limit": "quarantine"},
    }
    path = write_policy(tmp_path, ingress, {SCHEMA: payment_schema()})
    out = run("check-policy", str(path))
    assert out.returncode == 0, out.stderr
    assert f"schema of restricted.payments: {SCHEMA}" in out.stdout
    assert (
        "allowed by the schema but named by no rule (dropped): "
        "device_fingerprint, ip_address, risk_score, user_agent"
    ) in out.stdout
    assert (
        "rate limit: 100/s, burst 200, per tenant, over the limit: quarantine, "
        "at most 10000 buckets, 10 new per refill"
    ) in out.stdout


def test_check_policy_refuses_a_schema_that_does_not_load(tmp_path: Path) -> None:
    path = write_policy(tmp_path, {"schema": SCHEMA}, {SCHEMA: '{"type": "objekt"}'})
    out = run("check-policy", str(path))
    assert out.returncode == 1
    assert str(tmp_path / SCHEMA) in out.stderr and "does not load" in out.stderr
    assert "boundaries[0].ingress.schema" in out.stderr and "at /type" in out.stderr


def test_the_readme_lines_for_the_example_schema_on_the_example_policy(tmp_path: Path) -> None:
    """The example policy with the example schema, as the README shows check-policy's lines."""
    example = REPO / "deploy" / "policies"
    anchor = "    destination: confidential.payments\n"
    text = (example / "ecommerce.yaml").read_text()
    ingress = (
        "    ingress:\n      schema: schemas/payment.schema.json\n"
        "      rate_limit: {rate: 100, burst: 200, over_limit: quarantine}\n"
    )
    policy = tmp_path / "ecommerce.yaml"
    policy.write_text(text.replace(anchor, anchor + ingress))
    shutil.copytree(example / "schemas", tmp_path / "schemas")
    out = run("check-policy", str(policy))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    digest = hashlib.sha256((example / "schemas" / "payment.schema.json").read_bytes())
    start = lines.index(
        "    schema of restricted.payments: schemas/payment.schema.json "
        f"(https://json-schema.org/draft/2020-12/schema, sha256 {digest.hexdigest()[:12]})"
    )
    readme = (REPO / "README.md").read_text()
    assert "\n".join(lines[start : start + 3]) in readme
    assert lines[start + 1 : start + 3] == [
        "      allowed by the schema but named by no rule (dropped): "
        "device_fingerprint, ip_address, risk_score, user_agent",
        "    rate limit: 100/s, burst 200, per tenant, over the limit: quarantine, "
        "at most 10000 buckets, 10 new per refill",
    ]
