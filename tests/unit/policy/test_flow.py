"""The flow proof (zoneapp.policy.flow): policies that leak through two hops (and through
``derive``, ``keep`` on an object, a wildcard, the key, a header) compile, because each
boundary on its own is fine, and the proof refuses them; sanitizing at the first hop
passes. Every shipped or test-owned policy passes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from zoneapp.policy import CompiledPolicy, Level, PolicyError, compile_policy_text, load_policy
from zoneapp.policy.flow import LEAK, FlowProof, explain, prove_flow, trace_crossings

ROOT = Path(__file__).resolve().parents[3]

ZONES = """\
version: "flow-1"
zones:
  - {name: restricted, level: restricted}
  - {name: confidential, level: confidential}
  - {name: internal, level: internal}
  - {name: public, level: public}
boundaries:
"""


def chain(first: str, second: str, *, third: str | None = None) -> str:
    """restricted.in -> confidential.mid -> public.out (or -> internal.mid2 -> public.out),
    with the given field rules (and any other keys) for each boundary."""
    text = ZONES + _boundary("to-confidential", "restricted.in", "confidential.mid", first)
    if third is None:
        text += _boundary("to-public", "confidential.mid", "public.out", second)
    else:
        text += _boundary("to-internal", "confidential.mid", "internal.mid2", second)
        text += _boundary("to-public", "internal.mid2", "public.out", third)
    return text


def _boundary(name: str, source: str, destination: str, body: str) -> str:
    head = f"  - name: {name}\n    source: {source}\n    destination: {destination}\n"
    return head + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


def compiled(text: str) -> CompiledPolicy:
    """The loader accepts the policy: each boundary on its own passes the one-hop rules."""
    return compile_policy_text(text.encode(), "flow-test.yaml")


def prove(text: str) -> FlowProof:
    return prove_flow(compiled(text))


def refused(text: str) -> str:
    proof = prove(text)
    assert not proof.ok
    assert any(h.outcome == LEAK for p in proof.paths for h in p.hops) or proof.problems
    return "\n".join(proof.problems)


# -- two hops ------------------------------------------------------------------------------


def test_a_field_kept_through_two_hops_is_refused_with_boundary_hop_field_and_class() -> None:
    text = chain(
        "fields:\n  tenant: {transform: keep, class: internal}\n",
        "fields:\n  tenant: {transform: keep, class: public}\n",
    )
    msg = refused(text)
    assert "boundary 'to-public'" in msg and "hop 2" in msg
    assert "field tenant arrives as internal, written by 'to-confidential'" in msg
    assert "the rule's class public cannot lower it" in msg
    assert "'keep' (fields.tenant) moves it unsanitized into zone 'public' (public)" in msg
    assert "restricted.in -> confidential.mid -> public.out" in msg


def test_sanitizing_at_the_first_hop_with_a_declared_output_class_passes() -> None:
    text = chain(
        "fields:\n  card: {transform: tokenize, class: restricted, output_class: public}\n",
        "fields:\n  card: {transform: keep, class: public}\n",
    )
    proof = prove(text)
    assert proof.ok, proof.problems
    [path] = [p for p in proof.paths if p.hops[0].field == "card" and len(p.hops) == 2]
    first, second = path.hops
    assert (first.arrives, first.transform, first.leaves) == (
        Level.RESTRICTED,
        "tokenize",
        Level.PUBLIC,
    )
    assert (second.arrives, second.outcome, second.leaves) == (Level.PUBLIC, "kept", Level.PUBLIC)


def test_a_sanitized_value_is_only_as_low_as_the_zone_it_was_written_to() -> None:
    """Without output_class a hash into confidential is confidential: keeping it into public
    is refused, hashing it again there passes."""
    kept = chain(
        "fields:\n  email: {transform: hash, class: restricted}\n",
        "fields:\n  email: {transform: keep, class: public}\n",
    )
    assert "field email arrives as confidential" in refused(kept)
    rehashed = kept.replace(
        "email: {transform: keep, class: public}", "email: {transform: hash, class: public}"
    )
    assert prove(rehashed).ok


def test_a_value_reproducing_transform_downstream_is_a_keep() -> None:
    """generalize to a 10-character prefix can copy the value: it passes the class on."""
    text = chain(
        "fields:\n  account: {transform: keep, class: confidential}\n",
        "fields:\n  account: {transform: generalize, to: prefix, length: 10, class: public}\n",
    )
    assert "'generalize' (fields.account) moves it unsanitized" in refused(text)


def test_a_higher_class_downstream_raises_the_field_for_the_hops_after_it() -> None:
    """The middle boundary (within the confidential zone) calls region confidential: from
    there on it is confidential, though it entered as internal."""
    text = (
        ZONES
        + _boundary(
            "to-confidential", "restricted.in", "confidential.mid",
            "fields:\n  region: {transform: keep, class: internal}\n",
        )
        + _boundary(
            "within-confidential", "confidential.mid", "confidential.mid2",
            "fields:\n  region: {transform: keep, class: confidential}\n",
        )
        + _boundary(
            "to-public", "confidential.mid2", "public.out",
            "fields:\n  region: {transform: keep, class: public}\n",
        )
    )  # fmt: skip
    msg = refused(text)
    assert "hop 3, boundary 'to-public'" in msg
    assert "field region arrives as confidential, written by 'within-confidential'" in msg


def test_a_sanitized_output_is_never_above_its_input() -> None:
    """output_class (or the destination's level) is a ceiling: a public input stays public."""
    text = chain(
        "fields:\n  tag: {transform: hash, class: public, output_class: confidential}\n",
        "fields:\n  tag: {transform: keep, class: public}\n",
    )
    proof = prove(text)
    assert proof.ok, proof.problems
    [tag] = [p for p in proof.paths if p.hops[0].field == "tag" and len(p.hops) == 2]
    assert [h.leaves for h in tag.hops] == [Level.PUBLIC, Level.PUBLIC]


def test_a_leak_at_the_third_hop_is_found() -> None:
    text = chain(
        "fields:\n  region: {transform: keep, class: internal}\n",
        "fields:\n  region: {transform: keep, class: internal}\n",
        third="fields:\n  region: {transform: keep, class: public}\n",
    )
    msg = refused(text)
    assert "hop 3, boundary 'to-public'" in msg
    assert "restricted.in -> confidential.mid -> internal.mid2 -> public.out" in msg
    assert "written by 'to-internal'" in msg


def test_the_proof_passes_when_every_hop_sanitizes() -> None:
    text = chain(
        "fields:\n  region: {transform: keep, class: internal}\n",
        "fields:\n  region: {transform: keep, class: internal}\n",
        third="fields:\n  region: {transform: generalize, to: prefix, length: 2}\n",
    )
    assert prove(text).ok


# -- one topic, several readers -------------------------------------------------------------


def test_a_field_has_the_highest_class_any_reader_of_its_topic_gives_it() -> None:
    """Review repro: two boundaries read restricted.in; one calls emp.ssn restricted and
    encrypts it, the other calls it public and keeps it into public. Each is fine on its
    own, and the proof used to take each boundary's word for what enters it."""
    text = ZONES + (
        _boundary(
            "to-confidential", "restricted.in", "confidential.mid",
            "fields:\n  emp.ssn: {transform: encrypt, class: restricted}\n"
            "  emp.name: {transform: keep, class: confidential}\n",
        )
        + _boundary(
            "to-public", "restricted.in", "public.out",
            "fields:\n  emp.ssn: {transform: keep, class: public}\n",
        )
    )  # fmt: skip
    msg = refused(text)
    assert msg.startswith("leak on path") and "hop 1, boundary 'to-public'" in msg
    assert (
        "field emp.ssn is declared restricted at its first hop (the highest class a "
        "boundary reading restricted.in gives it); the rule's class public cannot lower it"
    ) in msg
    # A reader keeping an object holds the other reader's restricted field inside it.
    whole = text.replace(
        "emp.ssn: {transform: keep, class: public}", "emp: {transform: keep, class: public}"
    )
    assert "field emp.ssn is declared restricted" in refused(whole)
    # Agreeing on the class, each reader sanitizing it for its zone, passes.
    fine = text.replace(
        "emp.ssn: {transform: keep, class: public}", "emp.ssn: {transform: hash, class: restricted}"
    )
    assert prove(fine).ok


def test_a_boundary_may_not_read_a_quarantine_topic() -> None:
    """Review repro: a boundary reading restricted.quarantine (raw originals) keeping
    emp.ssn as public into public used to be proven and loaded."""
    text = ZONES + _boundary(
        "quarantine-to-public", "restricted.quarantine", "public.dump",
        "fields:\n  emp.ssn: {transform: keep, class: public}\n",
    )  # fmt: skip
    with pytest.raises(PolicyError) as info:
        compiled(text)
    assert "boundaries[0].source[0]: 'restricted.quarantine' is zone 'restricted''s " in str(
        info.value
    )
    assert "quarantine topic: it holds unsanitized originals" in str(info.value)
    # Nor write another zone's quarantine topic (the source zone's is refused already).
    text = ZONES + _boundary(
        "into-quarantine", "restricted.in", "public.quarantine",
        "fields:\n  id: {transform: hash}\n",
    )  # fmt: skip
    with pytest.raises(PolicyError, match="the destination is zone 'public''s quarantine topic"):
        compiled(text)


def test_the_proof_refuses_a_boundary_reading_a_quarantine_or_the_security_topic() -> None:
    """The proof does not rely on the loader for it: a compiled policy whose boundary
    reads an operational topic (here patched in after loading) is refused."""
    policy = compiled(
        chain("fields:\n  id: {transform: hash}\n", "fields:\n  id: {transform: hash}\n")
    )
    policy.boundaries[0].sources = ("restricted.quarantine", policy.security_topic)
    problems = prove_flow(policy).problems
    assert (
        "boundary 'to-confidential' reads the quarantine topic 'restricted.quarantine': it holds "
        "unsanitized originals or events about them, which no boundary may forward"
    ) in problems
    assert any("reads the security topic 'security.violations'" in p for p in problems)


# -- derive --------------------------------------------------------------------------------


def test_a_derive_downstream_that_copies_an_upstream_field_is_refused() -> None:
    text = chain(
        "fields:\n  ssn: {transform: mask, class: restricted, keep_last: 4}\n",
        """
        fields:
          id: {transform: hash}
        derive:
          ssn_copy: {from: ssn, transform: keep, class: public}
        """,
    )
    msg = refused(text)
    assert "field ssn arrives as confidential" in msg and "(derive.ssn_copy)" in msg


def test_a_derive_that_copies_a_field_classified_higher_by_its_own_rule_is_refused() -> None:
    """One hop: the field rule says ssn is restricted, the derive calls it confidential
    and keeps it. The loader sees two fine rules; the proof sees one value."""
    text = ZONES + _boundary(
        "to-confidential",
        "restricted.in",
        "confidential.mid",
        """
        fields:
          ssn: {transform: mask, class: restricted}
        derive:
          ssn_copy: {from: ssn, transform: keep, class: confidential}
        """,
    )
    msg = refused(text)
    assert "hop 1" in msg and "field ssn is declared restricted at its first hop" in msg
    assert "the rule's class confidential cannot lower it" in msg


def test_a_derive_output_is_followed_to_the_next_hop() -> None:
    """The derived field is what the next boundary receives, with the derive's output class."""
    base = chain(
        """
        fields:
          id: {transform: hash}
        derive:
          age: {from: born, transform: generalize, to: age_range, class: restricted}
        """,
        "fields:\n  age: {transform: keep, class: public}\n",
    )
    msg = refused(base)
    assert "field age arrives as confidential" in msg and "from born" in msg
    declared = base.replace(
        "to: age_range, class: restricted}",
        "to: age_range, class: restricted, output_class: public}",
    )
    assert prove(declared).ok


def test_a_field_a_derive_keeps_is_followed_at_the_derive_output_not_its_source() -> None:
    """Review repro: the first hop suppresses emp.ssn and derives ssn_copy from it with
    keep; the second keeps ssn_copy into public. The sanitizer writes the SSN at ssn_copy,
    so the proof must follow it there (it used to follow it at emp.ssn, which the second
    boundary does not name, and pass)."""
    text = chain(
        """
        fields:
          emp.ssn: {transform: suppress, class: confidential}
        derive:
          ssn_copy: {from: emp.ssn, transform: keep, class: confidential}
        """,
        "fields:\n  ssn_copy: {transform: keep, class: public}\n",
    )
    msg = refused(text)
    assert "hop 2, boundary 'to-public'" in msg
    assert "field ssn_copy arrives as confidential, written by 'to-confidential'" in msg
    assert "(keep derive.ssn_copy) from emp.ssn;" in msg
    [path] = [p for p in prove(text).paths if p.leak is not None]
    assert [(h.output, h.outcome) for h in path.hops] == [("ssn_copy", "kept"), ("ssn_copy", LEAK)]


def test_a_field_inside_a_derive_source_lands_inside_the_derive_output() -> None:
    """A derive keeping an object copies it whole: emp.ssn, read through ``from: emp``,
    is at person.ssn downstream, where a public keep leaks it."""
    text = chain(
        """
        fields:
          emp.ssn: {transform: keep, class: confidential}
        derive:
          person: {from: emp, transform: keep, class: confidential}
        """,
        "fields:\n  person.ssn: {transform: keep, class: public}\n",
    )
    msg = refused(text)
    assert "field person.ssn arrives as confidential" in msg and "from emp.ssn" in msg


@pytest.mark.parametrize(
    ("upstream", "source", "field"),
    [
        # The derive reads an object holding the sanitized field ...
        ("customer.ssn: {transform: mask, class: restricted}", "customer", "customer.ssn"),
        # ... or a field inside an object kept whole upstream.
        ("customer: {transform: keep, class: confidential}", "customer.ssn", "customer"),
    ],
)
def test_a_derive_is_fed_by_fields_inside_and_around_its_source(
    upstream: str, source: str, field: str
) -> None:
    text = chain(
        f"fields:\n  {upstream}\n",
        f"fields:\n  id: {{transform: hash}}\n"
        f"derive:\n  copy: {{from: {source}, transform: keep, class: public}}\n",
    )
    msg = refused(text)
    assert f"field {field} arrives as confidential" in msg and "(derive.copy)" in msg


# -- keep on an object ---------------------------------------------------------------------


def test_keep_on_an_object_downstream_carries_its_most_sensitive_member() -> None:
    text = chain(
        """
        fields:
          customer.name: {transform: hash, class: restricted}
          customer.country: {transform: keep, class: public}
        """,
        "fields:\n  customer: {transform: keep, class: public}\n",
    )
    msg = refused(text)
    assert "field customer.name arrives as confidential" in msg
    assert "'keep' (fields.customer)" in msg
    assert "field customer.country" not in msg


def test_keep_on_an_object_that_holds_a_field_a_derive_calls_restricted_is_refused() -> None:
    text = ZONES + _boundary(
        "to-confidential",
        "restricted.in",
        "confidential.mid",
        """
        fields:
          customer: {transform: keep, class: confidential}
        derive:
          born_year: {from: customer.born, transform: generalize, to: year, class: restricted}
        """,
    )
    msg = refused(text)
    assert "field customer.born is declared restricted" in msg and "(fields.customer)" in msg


def test_an_object_kept_upstream_meets_the_rules_inside_it_downstream() -> None:
    text = chain(
        "fields:\n  customer: {transform: keep, class: confidential}\n",
        """
        fields:
          customer.name: {transform: keep, class: public}
          customer.phone: {transform: hash}
        """,
    )
    msg = refused(text)
    assert "field customer.name arrives as confidential" in msg
    assert "customer.phone" not in msg


# -- wildcards -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "downstream",
    ["attrs.*: {transform: keep, class: public}", "attrs.color: {transform: keep, class: public}"],
)
def test_a_wildcard_upstream_reaches_wildcard_and_named_rules_downstream(downstream: str) -> None:
    text = chain(
        "fields:\n  attrs.*: {transform: keep, class: confidential}\n",
        f"fields:\n  {downstream}\n",
    )
    msg = refused(text)
    assert "arrives as confidential, written by 'to-confidential' (keep fields.attrs.*)" in msg


def test_a_wildcard_downstream_takes_a_named_field_from_upstream() -> None:
    text = chain(
        "fields:\n  attrs.size: {transform: keep, class: confidential}\n",
        "fields:\n  attrs.*: {transform: keep, class: public}\n",
    )
    assert "field attrs.size arrives as confidential" in refused(text)


def test_a_named_rule_beside_a_wildcard_is_not_taken_by_the_wildcard() -> None:
    """The sanitizer sends a named key to its own rule before ``*``: no false leak."""
    text = ZONES + _boundary(
        "to-confidential",
        "restricted.in",
        "confidential.mid",
        """
        fields:
          attrs.secret: {transform: hash, class: restricted}
          attrs.*: {transform: keep, class: confidential}
        """,
    )
    assert prove(text).ok


def test_arrays_meet_only_array_rules() -> None:
    text = chain(
        "fields:\n  items[].sku: {transform: keep, class: confidential}\n",
        "fields:\n  items: {transform: keep, class: public}\n",
    )
    assert "field items[].sku arrives as confidential" in refused(text)
    fine = text.replace("items: {transform: keep, class: public}", "items[]: {transform: hash}")
    assert prove(fine).ok


# -- key, headers, what is dropped ---------------------------------------------------------


def test_the_key_and_headers_are_followed_too() -> None:
    text = chain(
        """
        key: {transform: hash}
        headers: {rules: {x-user: {transform: hash}}}
        """,
        """
        key: {transform: keep, class: public}
        headers: {rules: {x-user: {transform: keep, class: public}}}
        """,
    )
    msg = refused(text)
    assert "field $key arrives as confidential" in msg and "'keep' (key)" in msg
    assert "field $headers.x-user arrives as confidential" in msg


def test_fields_the_next_boundary_does_not_name_stop_there() -> None:
    text = chain(
        "fields:\n  notes: {transform: keep, class: confidential}\n  id: {transform: hash}\n"
        "  ssn: suppress\n",
        "unclassified: block\nfields:\n  id: {transform: hash}\n"
        "  ssn: {transform: keep, class: public}\n",
    )
    proof = prove(text)
    assert proof.ok, proof.problems
    [notes] = [p for p in proof.paths if p.hops[0].field == "notes"]
    assert [h.outcome for h in notes.hops] == ["kept", "blocked"]
    # A suppressed field never reaches the next boundary (whose keep would leak it).
    [ssn] = [p for p in proof.paths if p.hops[0].field == "ssn" and p.topics[0] == "restricted.in"]
    assert [(h.boundary, h.outcome) for h in ssn.hops] == [("to-confidential", "suppressed")]


def test_the_trace_context_is_outside_the_proof_and_named_per_boundary() -> None:
    """traceparent/tracestate carry producer-chosen bytes across every hop that lets them,
    which no field rule governs: the proof passes and trace_crossings says where."""
    text = chain(
        "fields:\n  id: {transform: hash}\ntrace: {tracestate_keys: [dd]}\n",
        "fields:\n  id: {transform: hash}\ntrace: {continue: false}\n",
    )
    assert prove(text).ok
    assert trace_crossings(compiled(text)) == (
        "trace context, not in the flow proof: the producer's trace id (16 producer-chosen "
        "bytes) crosses to-confidential; tracestate members (DLP-scanned) cross "
        "to-confidential (dd)"
    )


@pytest.mark.parametrize(
    "rules", ["fields:\n  x: {transform: hash}\n", "key: {transform: suppress}\n"]
)
def test_a_cycle_of_boundaries_is_refused(rules: str) -> None:
    """Even when nothing of a record survives the loop (its key suppressed, no field
    named), the record itself circulates."""
    text = ZONES + (
        _boundary("b-to-a", "confidential.b", "confidential.a", rules)
        + _boundary("a-to-b", "confidential.a", "confidential.b", rules)
    )
    msg = refused(text)
    assert msg == (
        "boundaries a-to-b -> b-to-a -> a-to-b form a cycle: records would circulate for "
        "ever; a destination topic must not lead back to its own boundary"
    )


# -- output_class, as the loader checks it ---------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("{transform: keep, class: public, output_class: public}", "'keep' does not sanitize"),
        ("{transform: suppress, output_class: public}", "'suppress' does not sanitize"),
        (
            "{transform: generalize, to: prefix, length: 8, class: public, output_class: public}",
            "keeps 8 leading characters",
        ),
        ("{transform: hash, output_class: restricted}", "above the destination zone"),
        ("{transform: hash, output_class: secret}", "unknown classification 'secret'"),
    ],
)
def test_output_class_only_on_sanitizing_transforms_at_or_below_the_destination(
    rule: str, problem: str
) -> None:
    text = ZONES + _boundary(
        "to-confidential", "restricted.in", "confidential.mid", f"fields:\n  x: {rule}\n"
    )
    with pytest.raises(PolicyError) as info:
        compiled(text)
    assert problem in str(info.value) and "fields.x" in str(info.value)


def test_output_class_on_a_derive_is_compiled() -> None:
    policy = compiled(
        ZONES
        + _boundary(
            "to-confidential",
            "restricted.in",
            "confidential.mid",
            "derive:\n  y: {from: born, transform: generalize, to: year, output_class: internal}\n",
        )
    )
    assert policy.boundaries[0].derived[0].rule.output_level == Level.INTERNAL


# -- the policies the project ships and tests with ------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "deploy/policies/ecommerce.yaml",
        "tests/fixtures/policy.yaml",
        "tests/component/web/policy.yaml",
    ],
)
def test_shipped_and_test_policies_pass_the_proof(path: str) -> None:
    proof = prove_flow(load_policy(ROOT / path))
    assert proof.ok, proof.problems
    assert proof.paths


def test_the_example_policy_takes_age_ranges_to_public_through_two_sanitizing_hops() -> None:
    proof = prove_flow(load_policy(ROOT / "deploy/policies/ecommerce.yaml"))
    [age] = [p for p in proof.paths if [h.output for h in p.hops] == ["age_range", "age_range"]]
    assert [h.boundary for h in age.hops] == ["user-pii-to-confidential", "profiles-to-public"]
    assert [(h.arrives, h.leaves) for h in age.hops] == [
        (Level.RESTRICTED, Level.PUBLIC),
        (Level.PUBLIC, Level.PUBLIC),
    ]
    assert age.topics == (
        "restricted.user-pii",
        "confidential.user-profiles",
        "public.marketing-profiles",
    )


def test_explain_has_a_row_per_hop_with_its_classes() -> None:
    text = chain(
        "fields:\n  tenant: {transform: keep, class: internal}\n",
        "fields:\n  tenant: {transform: keep, class: public}\n",
    )
    table = explain(prove(text)).splitlines()
    assert table[0].split() == [
        "path", "hop", "boundary", "zones", "field", "arrives", "rule", "rule", "class",
        "transform", "output", "leaves", "outcome",
    ]  # fmt: skip
    rows = [line.split() for line in table[1:-1]]
    [number] = {row[0] for row in rows if row[4] == "tenant" and row[2] == "to-confidential"}
    assert [number, "1", "to-confidential", "restricted>confidential", "tenant", "internal",
            "fields.tenant", "internal", "keep", "tenant", "internal", "kept"] in rows  # fmt: skip
    assert [number, "2", "to-public", "confidential>public", "tenant", "internal", "fields.tenant",
            "public", "keep", "tenant", "internal", "LEAK"] in rows  # fmt: skip
    # The key (hashed by default) is a path of its own, sanitized at each hop.
    assert any(row[4] == "$key" and row[1] == "2" and row[-1] == "sanitized" for row in rows)
    assert table[-1].startswith("refused: 1 problem(s)")
