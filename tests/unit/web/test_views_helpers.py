"""Pure parts of the views: filters, cursors, the OpenAPI description."""

from __future__ import annotations

import pytest
from zoneapp.tables.violations import matches

from zoneapp.web import openapi
from zoneapp.web.views import (
    BadRequest,
    decode_cursor,
    encode_cursor,
    merge_rows,
    violation_filters,
)

EVENT = {
    "id": "v1",
    "timestamp": "2026-11-22T10:00:00.000Z",
    "boundary": "payments-to-confidential",
    "source": {"zone": "restricted"},
    "detector": "CREDIT_CARD",
    "findings": [{"detector": "CREDIT_CARD"}, {"detector": "US_SSN"}],
}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"zone": "restricted"}, True),
        ({"zone": "confidential"}, True),  # the destination zone, from the policy
        ({"zone": "public"}, False),
        ({"boundary": "payments-to-confidential"}, True),
        ({"boundary": "other"}, False),
        ({"detector": "US_SSN"}, True),
        ({"detector": "IBAN"}, False),
        ({"since": 1795341600.0}, True),
        ({"since": 1795341600.001}, False),
        ({"until": 1795341600.0}, False),
    ],
)
def test_violation_filters(filters: dict[str, object], expected: bool) -> None:
    zones = {"payments-to-confidential": "confidential"}
    assert matches(EVENT, destination_zones=zones, **filters) is expected  # type: ignore[arg-type]


def test_cursor_round_trip_and_paging_order() -> None:
    cursor = encode_cursor(EVENT)
    assert decode_cursor(cursor) == (EVENT["timestamp"], "v1")
    assert not matches(EVENT, before=decode_cursor(cursor))
    with pytest.raises(BadRequest):
        decode_cursor("not-a-cursor")


@pytest.mark.parametrize(
    "query", [{"limit": "0"}, {"limit": "x"}, {"limit": "501"}, {"since": "yesterday"}]
)
def test_bad_queries_are_400(query: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        violation_filters(query)


def test_merge_keeps_the_newest_row_of_a_partition() -> None:
    old = {"boundary": "b", "topic": "t", "partition": 0, "updated": 1.0, "consumed": 1}
    new = {**old, "updated": 2.0, "consumed": 5}
    other = {**old, "partition": 1}
    merged = merge_rows([old, other], [new])
    assert sorted((r["partition"], r["consumed"]) for r in merged) == [(0, 5), (1, 1)]


def test_openapi_description_is_valid() -> None:
    from openapi_spec_validator import validate

    spec = openapi.spec()
    validate(spec)  # type: ignore[arg-type]
    assert {"/zones", "/violations", "/violations/{id}", "/tokens/{token}", "/metrics"} <= set(
        spec["paths"]
    )
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert spec["paths"]["/violations"]["get"]["security"] == [{"bearer": []}]
