"""``faust -A zoneapp check-policy [--explain]`` and the flow proof, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FAUST = Path(sys.executable).parent / "faust"

LEAKY = """\
version: "leaky-1"
zones:
  - {name: restricted, level: restricted}
  - {name: confidential, level: confidential}
  - {name: public, level: public}
boundaries:
  - name: to-confidential
    source: restricted.users
    destination: confidential.users
    fields:
      region: {transform: keep, class: confidential}
      email: {transform: tokenize, class: restricted}
  - name: to-public
    source: confidential.users
    destination: public.users
    fields:
      region: {transform: keep, class: public}
      email: {transform: hash}
"""


def check_policy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAUST), "-A", "zoneapp", "check-policy", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ),
        timeout=120,
    )


def test_a_policy_leaking_through_two_hops_fails_the_check(tmp_path: Path) -> None:
    policy = tmp_path / "leaky.yaml"
    policy.write_text(LEAKY)
    out = check_policy(str(policy))
    assert out.returncode == 1
    assert f"{policy}: the flow proof refuses the policy:" in out.stderr
    assert "hop 2, boundary 'to-public'" in out.stderr
    assert "field region arrives as confidential, written by 'to-confidential'" in out.stderr
    assert "into zone 'public' (public)" in out.stderr
    assert "email" not in out.stderr  # hashed again at the second hop: no leak
    assert "OK (version" not in out.stdout
    # The README's example, word for word.
    assert out.stderr.splitlines()[1] == (
        "  - leak on path 2, hop 2, boundary 'to-public' (restricted.users -> "
        "confidential.users -> public.users): field region arrives as confidential, written "
        "by 'to-confidential' (keep fields.region); the rule's class public cannot lower it, "
        "and 'keep' (fields.region) moves it unsanitized into zone 'public' (public); "
        "sanitize it at this hop or before it"
    )


def test_explain_prints_the_table_even_when_the_proof_fails(tmp_path: Path) -> None:
    policy = tmp_path / "leaky.yaml"
    policy.write_text(LEAKY)
    out = check_policy("--explain", str(policy))
    assert out.returncode == 1
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows[0][:6] == ["path", "hop", "boundary", "zones", "field", "arrives"]
    region = [r for r in rows if len(r) > 4 and r[4] == "region" and r[2] == "to-public"]
    assert [r[-1] for r in region] == ["LEAK", "kept"]  # from upstream; then its own producers
    assert any(r[4] == "email" and r[1] == "2" and r[-1] == "sanitized" for r in rows)
    assert out.stdout.rstrip().endswith("refused: 1 problem(s)")


def test_the_example_policy_is_proven_and_explained() -> None:
    out = check_policy("--explain", "deploy/policies/ecommerce.yaml")
    assert out.returncode == 0, out.stderr
    assert "flow proof: 55 field paths, 67 hops; every class reaches lower zones only" in out.stdout
    # What the proof does not weigh is said, not left out: the example continues traces.
    assert (
        "  trace context, not in the flow proof: the producer's trace id (16 producer-chosen "
        "bytes) crosses payments-to-confidential, user-pii-to-confidential, profiles-to-public;"
    ) in out.stdout
    assert "tracestate members (DLP-scanned) cross none" in out.stdout
    rows = [line.split() for line in out.stdout.splitlines()]
    # The age range, as the README shows it: derived from the date of birth, public by its
    # declared output class, then kept.
    assert [r for r in rows if r[:1] == ["37"]] == [
        ["37", "1", "user-pii-to-confidential", "restricted>confidential", "date_of_birth",
         "restricted", "derive.age_range", "restricted", "generalize", "age_range", "public",
         "sanitized"],
        ["37", "2", "profiles-to-public", "confidential>public", "age_range", "public",
         "fields.age_range", "public", "keep", "age_range", "public", "kept"],
    ]  # fmt: skip
    assert out.stdout.rstrip().endswith("no class reaches a lower zone unsanitized")
