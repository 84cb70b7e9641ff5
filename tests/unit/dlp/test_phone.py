"""PHONE: international, North American and national numbers hit; ids and dates do not."""

from __future__ import annotations

import pytest

from tests.unit.dlp.evasions import ENCODINGS
from zoneapp.dlp import Finding, build_scanner
from zoneapp.dlp.phone import PhoneDetector

PHONE = build_scanner(["PHONE"], [])

INTERNATIONAL = [
    "+14155552671",
    "+1 415 555 2671",
    "+1 (415) 555-2671",
    "+1-(800)-123-4567",
    "+44 20 7946 0958",
    "+44 (0) 1707 774 707",
    "(+44) 1707 774707",
    "0044 1707 774 707",
    "00441707774707",
    "+972-50-123-4567",  # Israel
    "+972 9 762 5400",
    "+81-3-1234-5678",  # Japan
    "+81 90 1234 5678",
    "+86 10 1234 5678",  # China
    "+86 138 0013 8000",
    "+55 11 98456 5666",  # Brazil
    "+91 (22) 6666 2134",  # India
    "+34 983 453 999",  # Spain
    "+49 151 12345678",
    "+1 415 555 2671 ext. 23",  # extension
    "+1 415 555 2671x23",
]
NANP = [
    "(415) 555-2671",
    "(415)555-0132",
    "415-555-2671",
    "415.555.2671",
    "415 555 2671",
    "1-415-555-2671",
    "(212) 555-0100",  # the fictional 555-01xx range is still a phone number
    "212-555-0199",
    "US: 415-555-0132",
    "(415) 555-2671x123",  # extension
    "415-555-2671 ext. 12",
]
NATIONAL = [
    "03-1234-5678",  # Japan
    "090-1234-5678",
    "09-7625400",  # Israel
    "My Israeli number is 09-7625400",
    "010-1234-5678",  # China
    "138 0013 8000",
    "020 7946 0958",  # UK
    "01707 774 707",
    "06 12 34 56 78",  # France
    "0151 12345678",  # Germany
    "98765 43210",  # India mobile
]
#: Underscores group digits like any other separator (libphonenumber refuses them).
UNDERSCORED = [
    "+1_415_555_2671",
    "+44_20_7946_0958",
    "0044_20_7946_0958",
    "415_555_2671",
    "(415)_555_2671",
    "1_415_555_2671",
    "415_555-2671",  # mixed
    "415__555__2671",
    "phone 415_555_2671",
    "020_7946_0958",  # UK national
    "03_1234_5678",  # JP national
    "0151/12345678",  # DE national with a slash
]
#: Underscored look-alikes stay clean, as their spaced or dashed forms do.
UNDERSCORED_NEAR_MISSES = [
    "23_11_2026 10_30",  # a date and a time
    "2026_11_23_1030",
    "11_23_2026",
    "078_05_1123",  # an SSN
    "912_345_678",  # a thousands-grouped amount
    "4111_1111_1111_1111",  # a card's layout
    "SKU AB415_555_2671",  # glued to letters
    "report_2026_11_23.csv",
]
WITH_CONTEXT = [
    ("notes", "phone: 5551231234"),
    ("notes", "tel 4155552671"),
    ("notes", "mobile 07700900123"),
    ("customer.phone", "4155552671"),
    ("merchant.fax", "442079460958"),
]
NEAR_MISSES = [
    "order 4155552671",  # bare 10 digits, no context
    "2026-11-23 14:05",
    "2026-11-22T10:30:00Z",
    "23.11.2026 10:30",
    "01.02.2023 10:30",
    "11/23/2026",
    "192.168.100.200",
    "v1.2.3.4",
    "1,234,567.89",
    "912.345.678",
    "912 345 678",
    "ISBN 0-306-40615-2",
    "078-05-1123",  # an SSN, not a phone
    "1763788800000",
    "+99 983 453 999",  # no such country code
    "+123",
    "sku 100-200",
    "amount 1234.56",
    "4111 1111 1111 1111",
    "123e4567-e89b-12d3-a456-426614174000",
    "req 5f557203-3018-40c5-a38f-d547923a7369",
    "SKU AB415-555-2671",
    "0030 9703 2292 1111",  # a card token: the card layout is not a phone
]


@pytest.mark.parametrize("text", INTERNATIONAL + NANP + NATIONAL)
def test_phone_numbers(text: str) -> None:
    assert PHONE.scan_text(text) == ["PHONE"], text


@pytest.mark.parametrize(("path", "text"), WITH_CONTEXT)
def test_bare_numbers_with_context(path: str, text: str) -> None:
    assert [f.detector for f in PHONE.scan([(path, text)])] == ["PHONE"], text


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses(text: str) -> None:
    assert PHONE.scan([("notes", text)]) == [], text


@pytest.mark.parametrize(("form", "fn"), ENCODINGS, ids=lambda x: str(x)[:20])
def test_every_encoding(form: str, fn: object) -> None:
    assert callable(fn)
    assert PHONE.scan_text(fn("+1 415 555 2671")) == ["PHONE"], form


def test_regions_come_from_the_policy() -> None:
    assert PHONE.scan_text("0612 345678") == ["PHONE"]  # NL national, in the defaults
    only_us = build_scanner(["PHONE"], [], phone_regions=["US"])
    assert only_us.scan_text("03-1234-5678") == []
    assert only_us.scan_text("+81-3-1234-5678") == ["PHONE"]
    with pytest.raises(ValueError, match="XX"):
        PhoneDetector(["XX"])


@pytest.mark.parametrize(
    "path",
    ["phoneNumber", "homePhone", "customer.mobilePhone", "telNo", "faxNumber", "contactNumber"],
)
def test_context_words_in_camel_case(path: str) -> None:
    assert [f.detector for f in PHONE.scan([(path, "4155550132")])] == ["PHONE"]


@pytest.mark.parametrize(
    "text",
    [
        "INV 2021-439297",
        "2024-123456",
        "48.8584 2.2945",
        "-25.8093372186 -146.8101505937",
        "03/20/2035 10:50 PM",
        "13.12.108.3669",
    ],
)
def test_serials_coordinates_and_versions_are_not_phones(text: str) -> None:
    assert PHONE.scan([("notes", text)]) == [], text


@pytest.mark.parametrize("text", UNDERSCORED)
def test_underscored_numbers(text: str) -> None:
    assert PHONE.scan([("notes", text)]) == [Finding("notes", "PHONE")], text


@pytest.mark.parametrize("text", UNDERSCORED_NEAR_MISSES)
def test_underscored_near_misses(text: str) -> None:
    assert PHONE.scan([("notes", text)]) == [], text


@pytest.mark.parametrize(
    "text",
    [
        "pay_25545524_10",
        "pay_00543593_10",
        "order_12345_67890",
        "id_2025_11_23_4155552671",
        "ref_555_123_4567",
    ],
)
def test_underscores_inside_an_identifier_are_not_a_phone_layout(text: str) -> None:
    """Underscore-grouped digits count (415_555_2671), but not when an identifier's
    underscore glues them to a word: ids like these are common, phone numbers in them not."""
    assert PHONE.scan([("payment_id", text)]) == []
