"""CREDIT_CARD: issuers' published test numbers must hit; look-alikes must not."""

from __future__ import annotations

import pytest

from zoneapp.dlp import BUILTIN_DETECTORS, build_scanner
from zoneapp.dlp.credit_card import CreditCardDetector, is_card_number, luhn_ok

CARD = build_scanner(["CREDIT_CARD"], [])
ALL = build_scanner(list(BUILTIN_DETECTORS), [])

TEST_CARDS = [
    "4111111111111111",  # Visa
    "4012888888881881",
    "4222222222222",  # Visa, 13 digits
    "4917610000000000003",  # Visa, 19 digits
    "5555555555554444",  # Mastercard
    "5105105105105100",
    "2223003122003222",  # Mastercard 2-series
    "378282246310005",  # Amex
    "371449635398431",
    "6011111111111117",  # Discover
    "6011000990139424",
    "6445644564456445",
    "3056930009020004",  # Diners
    "36227206271667",
    "38520000023237",
    "3566002020360505",  # JCB
    "3530111333300000",
    "6200000000000005",  # UnionPay
    "6759649826438453",  # Maestro
    "5019717010103742",
]

VALID = [
    *TEST_CARDS,
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4012 8888 8888 1881",
    "5555-5555-5555-4444",
    "3782 822463 10005",  # Amex 4-6-5
    "3622 720627 1667",  # Diners 4-6-4
    "6011 0009 9013 9424",
    "4917 6100 0000 0000 003",
    str(4111111111111111),  # a JSON number
    str(378282246310005),
    str(4.111111111111111e15),  # a JSON float: "4111111111111111.0"
    "call me, card 4111 1111 1111 1111 exp 12/29",
    "card:4012888888881881;",
    '{"pan": "5105105105105100"}',
    "tok_4111111111111111",  # '_' is not a letter or digit
    "4111111111111111@example.com",
    "card (4111-1111-1111-1111)",
    # Overlapping digit runs: a failed candidate must not hide a valid one.
    "1234 4111 1111 1111 1111",
    "4111 1111 1111 1111 123",  # trailing CVV
    "4111 1111 1111 1111 1234",
    "1234567890123 4111111111111111",
    "order 1000000000000008, card 4111111111111111",
]

INVALID = [
    "4111111111111112",  # last digit changed: Luhn fails
    "4012888888881882",
    "5555555555554445",
    "378282246310006",
    "6011111111111118",
    "4111 1111 1111 1112",
    "4328601290401881",  # format-preserving token: same length and last four, fails Luhn
    "4328 6012 9040 1881",
    "1763788800000",  # epoch milliseconds
    "1763788800003",  # ... even one that passes Luhn (no issuer starts with 1)
    str(1735689600005),
    "1000000000000008",  # Luhn-valid order ids without an issuer prefix
    "9876543210000007",
    "8000000000000003",
    "41111111111111111111",  # 20 digits
    "12345678901234567890123",
    "x4111111111111111",  # inside a longer alphanumeric token
    "4111111111111111x",
    "ab4111111111111111cd",
    "411111111111",  # 12 digits
    "+14155552671",  # phone numbers
    "+4915112345678",
    "+1 415 555 2671",
    "(415) 555-2671",
    "123e4567-e89b-12d3-a456-426614174000",  # UUID
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",  # SHA-256 hex
    "****-****-****-1881",  # masked
    "4111 11 11 1111 1111",  # 2-digit groups are not a card layout
    "2026-11-22 2026-11-23",
    "1234.56",
    "",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_card_is_found(text: str) -> None:
    assert CARD.scan_text(text) == ["CREDIT_CARD"]
    assert "CREDIT_CARD" in ALL.scan_text(text)


@pytest.mark.parametrize("text", INVALID)
def test_look_alike_is_not_a_card(text: str) -> None:
    assert CARD.scan_text(text) == []
    assert "CREDIT_CARD" not in ALL.scan_text(text)


@pytest.mark.parametrize("number", TEST_CARDS)
def test_checksum_and_issuer(number: str) -> None:
    assert luhn_ok(number)
    assert is_card_number(number)
    assert CreditCardDetector().validate(number)


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("4111 1111 1111 1111 123", True),  # leading whole groups form a card
        ("1234 4111 1111 1111", False),  # the scanner finds the card at the next group
        ("4111 1111 1111 1111 1111", True),
        ("9999361052171881", False),  # Luhn-valid, no issuer
        ("4000123456791881", False),  # issuer ok, Luhn fails
    ],
)
def test_validate_candidates(candidate: str, expected: bool) -> None:
    assert CreditCardDetector().validate(candidate) is expected


@pytest.mark.parametrize(
    ("number", "issued"),
    [
        ("378282246310005", True),  # Amex is 15 digits ...
        ("3782822463100052", False),  # ... never 16
        ("5555555555554444", True),  # Mastercard is 16 ...
        ("555555555555442", False),  # ... never 15
        ("2720990000000007", True),  # top of the 2-series
        ("2721000000000004", False),  # just above it
        ("2220000000000000", False),  # just below it
        ("3010000000000002", True),  # Diners 300-305 ...
        ("3060000000000001", False),  # ... but not 306
        ("352700000000000008", False),  # JCB starts at 3528
        ("7000000000000005", False),  # no issuer starts with 7
    ],
)
def test_issuer_ranges_and_lengths(number: str, issued: bool) -> None:
    assert luhn_ok(number)  # so only the issuer table decides
    assert is_card_number(number) is issued
