"""CREDIT_CARD: issuers' test numbers in every form must hit; look-alikes must not."""

from __future__ import annotations

import pytest

from tests.unit.dlp.evasions import ENCODINGS, FORMATTING
from zoneapp.dlp import BUILTIN_DETECTORS, build_scanner
from zoneapp.dlp.credit_card import _gs1_ok, holds_card, is_card_number, luhn_ok

CARD = build_scanner(["CREDIT_CARD"], [])
ALL = build_scanner(list(BUILTIN_DETECTORS), [])


def with_check_digit(body: str) -> str:
    """``body`` plus the digit that makes it pass Luhn."""
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


# Issuers' published test numbers, one or more per scheme of the issuer table.
TEST_CARDS = [
    "4111111111111111",  # Visa 16
    "4012888888881881",
    "4222222222222",  # Visa 13
    "4917610000000000003",  # Visa 19
    "5555555555554444",  # Mastercard 51-55
    "5105105105105100",
    "2223003122003222",  # Mastercard 2-series
    "2720992593319364",
    "378282246310005",  # Amex
    "371449635398431",
    "6011111111111117",  # Discover
    "6011000990139424",
    "6445644564456445",  # Discover 644-649
    "6500000000000002",  # Discover 65
    "3056930009020004",  # Diners 16
    "36227206271667",  # Diners 14
    "38520000023237",
    "30569309025904",
    "3566002020360505",  # JCB
    "3530111333300000",
    "6200000000000005",  # UnionPay 16
    "6212345678901265",
    with_check_digit("620000000000000000"),  # UnionPay 19
    "6759649826438453",  # Maestro
    "5019717010103742",  # Dankort / Maestro 50
    "6304000000000000",  # Maestro (Laser range)
    "501800000009",  # Maestro 12
    "122000000000003",  # UATP
    "2200000000000004",  # Mir
    "2201382000000013",
    with_check_digit("811234567890123"),  # RuPay 81
    with_check_digit("979200000000000"),  # Troy
]

GROUPED = [
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "3782 822463 10005",  # Amex 4-6-5
    "3622 720627 1667",  # Diners 4-6-4
    "3622 7206 2716 67",  # Diners 4-4-4-2
    "4917 6100 0000 0000 003",
    "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",  # digit by digit
    "4111 - 1111 - 1111 - 1111",
    "4111 11 11 1111 1111",  # any grouping
    "+4111111111111111",  # a plus does not make a card a phone number
]

IN_TEXT = [
    "call me, card 4111 1111 1111 1111 exp 12/29",
    "card:4012888888881881;",
    '{"pan": "5105105105105100"}',
    "tok_4111111111111111",
    "4111111111111111@example.com",
    "card (4111-1111-1111-1111)",
    "1234 4111 1111 1111 1111",  # a group in front
    "4111 1111 1111 1111 123",  # trailing CVV
    "4111 1111 1111 1111 12/29",
    "1234567890123 4111111111111111",
    "order 1000000000000008, card 4111111111111111",
    str(4111111111111111),  # a JSON number
    str(4.111111111111111e15),  # a JSON float: "4111111111111111.0"
    "REF4111111111111111X",
    "ref_4111111111111111_end",
]

# Luhn-failing or issuer-less numbers and other digit strings that are not cards.
NEAR_MISSES = [
    "4111111111111112",  # bad Luhn
    "4012888888881882",
    "5555555555554445",
    "378282246310006",
    "122000000000004",  # UATP, bad Luhn
    "1234567812345678",  # no issuer
    "7000000000000000",
    "9999361052171881",  # Luhn-valid, no issuer
    "0000000000000000",
    "4006381333931",  # EAN-13 (a Visa-13 look-alike that is a valid GS1 barcode)
    "5901234123457",  # EAN-13
    "9783161484100",  # ISBN-13
    "978-3-16-148410-0",
    "10614141000415",  # GTIN-14
    "1Z999AA10123456784",  # UPS tracking
    "123e4567-e89b-12d3-a456-426614174000",  # UUID
    "1763788800000",  # epoch milliseconds
    "1763788800000000",  # epoch microseconds
    "192.168.100.200",
    "10.0.0.1 172.16.254.1",
    "v2.10.3",
    "1,234,567.89",
    "1.234.567,89",
    "12 345 678,90 EUR",
    "41111111111111111111",  # a 20-digit run is not split into windows
    "4111 1111 1111 111",  # 15 digits, Visa needs 13, 16 or 19
    "2026-11-23 14:05",
    "0049 4111 1111",
]


@pytest.mark.parametrize("number", TEST_CARDS)
def test_issuer_table_and_luhn(number: str) -> None:
    assert is_card_number(number) and luhn_ok(number)
    assert CARD.scan_text(number) == ["CREDIT_CARD"]


@pytest.mark.parametrize("text", GROUPED + IN_TEXT)
def test_grouped_and_in_text(text: str) -> None:
    assert CARD.scan_text(text) == ["CREDIT_CARD"], text


@pytest.mark.parametrize(("form", "fn"), FORMATTING + ENCODINGS, ids=lambda x: str(x)[:20])
@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "3782 822463 10005", "122000000000003"])
def test_every_evasion_class(card: str, form: str, fn: object) -> None:
    assert callable(fn)
    assert CARD.scan_text(fn(card)) == ["CREDIT_CARD"], (form, fn(card))


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_pass(text: str) -> None:
    assert CARD.scan_text(text) == [], text


def test_luhn_is_checked() -> None:
    for number in TEST_CARDS:
        last = int(number[-1])
        wrong = number[:-1] + str((last + 1) % 10)
        assert not is_card_number(wrong)
        assert not holds_card(wrong)


def test_luhn_agrees_with_its_definition_for_any_digits() -> None:
    """ASCII digits take a fast path (sums of code points); it gives Luhn's answers."""
    import random

    def by_definition(digits: str) -> bool:
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        return total % 10 == 0

    rng = random.Random(5)
    for _ in range(5000):
        digits = "".join(rng.choices("0123456789", k=rng.randint(1, 24)))
        assert luhn_ok(digits) == by_definition(digits), digits
    # Non-ASCII digits keep the per-digit int() path, with its answers.
    full_width = "4111111111111112".translate({ord("0") + d: 0xFF10 + d for d in range(10)})
    assert luhn_ok(full_width) == (sum(map(int, full_width)) % 10 == 0)


def test_barcode_exclusion_only_for_compact_numbers() -> None:
    """A number that passes both Luhn and the GS1 check digit: compact, it is taken
    as an EAN-13 barcode; grouped, as a card."""
    both = next(
        n
        for n in (f"400{i:09d}{d}" for i in range(1000) for d in "0123456789")
        if luhn_ok(n) and _gs1_ok(n)
    )
    assert is_card_number(both)
    assert CARD.scan_text(both) == []
    assert CARD.scan_text(f"{both[:4]} {both[4:7]} {both[7:10]} {both[10:]}") == ["CREDIT_CARD"]


def test_luhn_over_windows_of_a_long_run_agrees_with_luhn() -> None:
    """Runs of more than 64 groups use prefix sums: same answers as luhn_ok."""
    import random

    from zoneapp.dlp.credit_card import _WindowLuhn

    rng = random.Random(3)
    digits = "".join(rng.choice("0123456789") for _ in range(400))
    window = _WindowLuhn(digits)
    for start in range(0, 380, 7):
        for length in (12, 13, 15, 16, 19):
            assert window.ok(start, start + length) == luhn_ok(digits[start : start + length])
    planted = " ".join("7" * 200) + " " + " ".join("4111111111111111") + " " + " ".join("7" * 50)
    assert CARD.scan_text(planted) == ["CREDIT_CARD"]


def test_wide_separator_runs_and_lookalikes() -> None:
    assert CARD.scan_text("4111    1111    1111    1111") == ["CREDIT_CARD"]
    assert CARD.scan_text("❹❶❶❶❶❶❶❶❶❶❶❶❶❶❶❶") == ["CREDIT_CARD"]
    assert CARD.scan_text("\u0301".join("4111111111111111")) == ["CREDIT_CARD"]
