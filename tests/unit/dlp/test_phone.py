"""PHONE: E.164 and NANP numbers; dates, times, IPs, amounts and ids are not."""

from __future__ import annotations

import pytest

from zoneapp.dlp import BUILTIN_DETECTORS, build_scanner

PHONE = build_scanner(["PHONE"], [])
ALL = build_scanner(list(BUILTIN_DETECTORS), [])

VALID = [
    # E.164
    "+14155552671",
    "+1 415 555 2671",
    "+1-415-555-2671",
    "+1.415.555.2671",
    "+1 (415) 555-2671",
    "+1(415)555-2671",
    "+44 20 7946 0958",
    "+442079460958",
    "+49 30 901820",
    "+33 6 12 34 56 78",
    "+353 1 234 5678",
    "+7 912 345 67 89",
    "+4915112345678",
    "+61 2 9876 5432",
    # North American
    "(415) 555-2671",
    "(415)555-2671",
    "415-555-2671",
    "415.555.2671",
    "415 555 2671",
    "415 555-2671",
    "1-415-555-2671",
    "1 415 555 2671",
    # embedded
    "call (415) 555-2671 today",
    "tel:+14155552671",
    "phone=415-555-2671;",
    '{"phone": "+44 20 7946 0958"}',
]

INVALID = [
    "4155552671",  # bare 10 digits: too many ids look like this
    "14155552671",
    "2026-11-22",  # dates and times
    "2026-11-22T10:30:00Z",
    "22.11.2026",
    "10:30:00",
    "192.168.1.10",  # IP addresses
    "10.0.0.255",
    "1234.56",  # amounts
    "$1,234,567.89",
    "4111 1111 1111 1111",  # card-length runs
    "4111111111111111",
    "4111-1111-1111-1111",
    "***-**-6789",  # masked
    "123-45-6789",  # SSN layout
    "+1234",  # too short
    "+1234567",
    "+0415 555 2671",  # country codes do not start with 0
    "012-555-2671",  # area codes start 2-9
    "415-155-2671",  # exchanges start 2-9
    "415-555-26711",
    "5415-555-2671",
    "x415-555-2671",
    "415-555-2671x",
    "12-415-555-2671",  # continues a dashed number
    "10.415.555.2671",
    "415-555-2671-3",
    "SKU-10442",
    "",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_phone_is_found(text: str) -> None:
    assert PHONE.scan_text(text) == ["PHONE"]
    assert "PHONE" in ALL.scan_text(text)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_phone_is_not_found(text: str) -> None:
    assert PHONE.scan_text(text) == []
    assert "PHONE" not in ALL.scan_text(text)
