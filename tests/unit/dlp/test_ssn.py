"""US_SSN: dashed/spaced SSNs anywhere, bare 9 digits only in SSN-named fields."""

from __future__ import annotations

import pytest

from zoneapp.dlp import BUILTIN_DETECTORS, build_scanner
from zoneapp.dlp.ssn import SsnDetector

SSN = build_scanner(["US_SSN"], [])
ALL = build_scanner(list(BUILTIN_DETECTORS), [])

VALID = [
    "536-90-4399",
    "123-45-6789",
    "001-01-0001",
    "665-12-3456",
    "667-12-3456",
    "899-99-9998",
    "772-12-3456",
    "536 90 4399",
    "SSN: 536-90-4399.",
    "ssn=536-90-4399;dob=1990-01-01",
    '{"ssn": "536-90-4399"}',
    "(536-90-4399)",
]

INVALID = [
    "000-12-3456",  # area 000
    "666-12-3456",  # area 666
    "900-12-3456",  # area 9xx (ITINs, never SSNs)
    "999-12-3456",
    "123-00-4567",  # group 00
    "123-45-0000",  # serial 0000
    "078-05-1120",  # the Woolworth wallet card
    "219-09-9999",  # published in an advertisement
    "111-11-1111",  # one repeated digit
    "***-**-6789",  # masked
    "XXX-XX-6789",
    "123-45-67890",  # longer runs
    "1123-45-6789",
    "123-45-6789-1",
    "1-123-45-6789",
    "x123-45-6789",
    "123-45-6789x",
    "12-345-6789",  # other layouts
    "123-456-7890",
    "123 45-6789",  # mixed separators
    "536904399",  # bare 9 digits without an SSN field name
    "2026-11-22",
    "1234.56",
    "",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_ssn_is_found(text: str) -> None:
    assert SSN.scan_text(text) == ["US_SSN"]
    assert "US_SSN" in ALL.scan_text(text)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_ssn_is_not_found(text: str) -> None:
    assert SSN.scan_text(text) == []
    assert "US_SSN" not in ALL.scan_text(text)


@pytest.mark.parametrize(
    "path",
    [
        "ssn",
        "customer.ssn",
        "customer.SSN",
        "applicant.ssn_number",
        "socialSecurityNumber",
        "$headers.x-ssn",
        "people[3].social_security",
    ],
)
def test_bare_nine_digits_in_ssn_field(path: str) -> None:
    assert SSN.scan([(path, "536904399")]) == SSN.scan([(path, "536-90-4399")])
    assert [f.detector for f in SSN.scan([(path, "536904399")])] == ["US_SSN"]


@pytest.mark.parametrize("path", ["customer.id", "order.number", "$key", "routing", ""])
def test_bare_nine_digits_elsewhere(path: str) -> None:
    assert SSN.scan([(path, "536904399")]) == []


@pytest.mark.parametrize("text", ["000000000", "666123456", "078051120", "1536904399", "53690439"])
def test_bare_invalid_in_ssn_field(text: str) -> None:
    assert SSN.scan([("customer.ssn", text)]) == []


def test_validate_rules() -> None:
    detector = SsnDetector()
    assert detector.validate("536-90-4399")
    assert detector.validate("536 90 4399")
    assert not detector.validate("666-90-4399")
    assert not detector.validate_in_context("536904399", "customer.id")
    assert detector.validate_in_context("536904399", "customer.ssn")
