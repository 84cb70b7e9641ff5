"""IBAN: registry examples in every case and grouping hit; bad checksums do not."""

from __future__ import annotations

import pytest

from tests.unit.dlp.evasions import ENCODINGS, FORMATTING
from zoneapp.dlp import build_scanner
from zoneapp.dlp.iban import IBAN_FORMATS, iban_ok

IBAN = build_scanner(["IBAN"], [])

# Examples from the SWIFT IBAN registry.
REGISTRY_EXAMPLES = [
    "GB82WEST12345698765432",
    "DE89370400440532013000",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "CH9300762011623852957",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "BE68539007547034",
    "AT611904300234573201",
    "NO9386011117947",
    "PL61109010140000071219812874",
    "SE4550000000058398257466",
    "IE29AIBK93115212345678",
    "PT50000201231234567890154",
    "FI2112345600000785",
    "LU280019400644750000",
    "MT84MALT011000012345MTLCAST001S",
    "SA0380000000608010167519",
    "BR1800360305000010009795493C1",
]


def grouped(iban: str, sep: str = " ") -> str:
    return sep.join(iban[i : i + 4] for i in range(0, len(iban), 4))


FORMS = [
    *REGISTRY_EXAMPLES,
    *(grouped(i) for i in REGISTRY_EXAMPLES),
    *(grouped(i, "-") for i in REGISTRY_EXAMPLES),
    *(i.lower() for i in REGISTRY_EXAMPLES),
    grouped("DE89370400440532013000").lower(),
    "de89-3704-0044-0532-0130-00",
    "IBAN: DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX",
    "pay to GB82WEST12345698765432.",
    "REFDE89370400440532013000X",
    "ref_de89370400440532013000_end",
    "BE68 5390 0754 7034 NEXT",
]
INVALID = [
    "DE89370400440532013001",  # one digit changed
    "GB82WEST12345698765433",
    "GB83WEST12345698765432",  # check digits changed
    "DE8937040044053201300",  # too short for DE
    "DE893704004405320130000",  # a longer digit string is not cut
    "XX89370400440532013000",  # unknown country
    "DE89ABCD00440532013000",  # DE's BBAN is all digits
    "GB82WEST1234569876543X",
    "tok_c9Xk2P0qLm7Rz4Tw",
]


@pytest.mark.parametrize("text", FORMS)
def test_iban_forms(text: str) -> None:
    assert IBAN.scan_text(text) == ["IBAN"], text


@pytest.mark.parametrize("text", INVALID)
def test_invalid(text: str) -> None:
    assert IBAN.scan_text(text) == [], text


@pytest.mark.parametrize(
    ("form", "fn"),
    [
        f
        for f in FORMATTING
        if f[0]
        in (
            "nbsp",
            "en-dash",
            "non-breaking-hyphen",
            "zero-width-space",
            "soft-hyphen",
            "fullwidth",
            "glued-letters",
            "glued-underscores",
            "spaced-dash",
            "tab-grouped",
        )
    ]
    + ENCODINGS,
    ids=lambda x: str(x)[:20],
)
def test_every_evasion_class(form: str, fn: object) -> None:
    assert callable(fn)
    value = grouped("DE89370400440532013000")
    assert IBAN.scan_text(fn(value)) == ["IBAN"], (form, fn(value))


def test_registry_table_covers_the_examples() -> None:
    for iban in REGISTRY_EXAMPLES:
        assert iban[:2] in IBAN_FORMATS and iban_ok(iban)
    assert len(IBAN_FORMATS) > 70


@pytest.mark.parametrize(
    "text",
    [
        "De89370400440532013000",
        "iban: De89 3704 0044 0532 0130 00",
        "gb29NWBK60161331926819",
        "DE 89 3704 0044 0532 0130 00",
        "DE-89-3704-0044-0532-0130-00",
    ],
)
def test_title_case_and_spaced_check_digits(text: str) -> None:
    assert IBAN.scan_text(text) == ["IBAN"], text


def test_mixed_case_bban_is_not_an_iban() -> None:
    assert IBAN.scan_text("GB29NwBk60161331926819") == []
