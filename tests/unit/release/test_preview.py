"""The officer's preview masks what the boundary's own scan flags (README "Approved release")."""

from __future__ import annotations

from pathlib import Path

import orjson

from .bench import bench, officer

POLICY = """
version: "rev-1"
tenant_id: tenant_id
security_topic: security.violations
zones:
  - {name: restricted, level: restricted}
  - {name: confidential, level: confidential}
dlp:
  detectors: [CREDIT_CARD, EMAIL, PHONE, US_SSN]
boundaries:
  - name: hr
    source: restricted.hr
    destination: confidential.hr
    headers: {rules: {ssn: {transform: keep, class: confidential}}}
    fields:
      tenant_id: {transform: keep, class: public}
      emp.ssn: {transform: keep, class: confidential}
      notes: {transform: keep, class: confidential}
      tags: {transform: keep, class: confidential}
"""


async def test_a_bare_ssn_flagged_by_its_path_is_masked(tmp_path: Path) -> None:
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme", "emp": {"ssn": "219456789"}}])
    assert b.events[0]["detector"] == "US_SSN"
    preview = await b.service.preview(officer("alice"), b.events[0])
    assert preview["forwardable"] is True
    assert preview["record"]["value"] == {
        "tenant_id": "acme",
        "emp": {"ssn": "[masked:US_SSN]"},
    }
    assert b"219456789" not in orjson.dumps(preview)


async def test_a_card_split_over_single_item_arrays_masks_the_array(tmp_path: Path) -> None:
    doc = {"tenant_id": "acme", "tags": [["4111"], ["1111"], ["1111"], ["1111"]], "notes": "x"}
    b = await bench(tmp_path, POLICY, "hr", [doc])
    assert b.events[0]["field_path"] == "tags[]"
    preview = await b.service.preview(officer("alice"), b.events[0])
    value = preview["record"]["value"]
    assert value["tags"] == ["[masked:CREDIT_CARD]"] * 4
    assert value["notes"] == "x"
    assert b"1111" not in orjson.dumps(preview)


async def test_a_header_flagged_by_its_name_is_masked(tmp_path: Path) -> None:
    b = await bench(
        tmp_path, POLICY, "hr", [{"tenant_id": "acme"}], headers=[[("ssn", b"219456789")]]
    )
    preview = await b.service.preview(officer("alice"), b.events[0])
    assert preview["record"]["headers"] == [["ssn", "[masked:US_SSN]"]]


class _Scanner:
    """A scanner reporting a path the output does not have."""

    def scan(self, items: object, opaque: object = ()) -> list[object]:
        from zoneapp.dlp import Finding

        return [Finding("nowhere", "CREDIT_CARD")]


def test_a_finding_that_cannot_be_placed_masks_nothing_partially() -> None:
    import pytest

    from zoneapp.release.service import PreviewMask

    with pytest.raises(LookupError):
        PreviewMask(_Scanner()).apply(None, {"a": "b"}, [])


async def test_field_names_are_masked_apart_from_values(tmp_path: Path) -> None:
    b = await bench(tmp_path, POLICY, "hr", [{"tenant_id": "acme"}])
    from zoneapp.release.service import PreviewMask

    mask = PreviewMask(b.policy.scanner)
    out = mask.apply(None, {"notes": {"a@example.com": "fine", "x": "b@example.com"}}, [])
    assert out["value"] == {"notes": {"[masked:EMAIL]": "fine", "x": "[masked:EMAIL]"}}
