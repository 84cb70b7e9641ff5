"""IBAN: registry examples (compact and grouped) must hit; look-alikes must not."""

from __future__ import annotations

import pytest

from zoneapp.dlp import BUILTIN_DETECTORS, build_scanner
from zoneapp.dlp.iban import IBAN_FORMATS, IbanDetector, iban_ok

IBAN = build_scanner(["IBAN"], [])
ALL = build_scanner(list(BUILTIN_DETECTORS), [])

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
]

VALID = [
    *REGISTRY_EXAMPLES,
    "GB82 WEST 1234 5698 7654 32",
    "DE89 3704 0044 0532 0130 00",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91 ABNA 0417 1643 00",
    "CH93 0076 2011 6238 5295 7",
    "ES91 2100 0418 4502 0005 1332",
    "IT60 X054 2811 1010 0000 0123 456",
    "BE68 5390 0754 7034",
    "NO93 8601 1117 947",
    "IBAN: DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX",
    "pay to GB82WEST12345698765432.",
    '{"iban": "NL91ABNA0417164300"}',
    "BE68 5390 0754 7034 NEXT",  # text after the last group
    "(CH9300762011623852957)",
]

INVALID = [
    "DE89370400440532013001",  # one digit changed
    "GB82WEST12345698765433",
    "GB83WEST12345698765432",  # check digits changed
    "NL91ABNA0417164301",
    "DE89 3704 0044 0532 0130 01",
    "DE8937040044053201300",  # too short for DE
    "DE893704004405320130000",  # too long for DE
    "BE6853900754703",
    "XX89370400440532013000",  # unknown country
    "QQ82WEST12345698765432",
    "GB82WEST1234569876543X",  # BBAN structure: GB ends in digits
    "DE89 3704 0044 0532 0130 0012",  # the last group runs past the length
    "de89370400440532013000",  # lower case (IBANs are printed upper case)
    "xDE89370400440532013000",  # inside a token
    "DE89370400440532013000x",
    "zenc1.ab-DE89370400440532013000",  # inside base64url ciphertext
    "h1.DE89370400440532013000_x",
    "DE89-3704-0044-0532-0130-00",  # dashes are not an IBAN layout
    "SKU-10442",
    "",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_iban_is_found(text: str) -> None:
    assert IBAN.scan_text(text) == ["IBAN"]
    assert "IBAN" in ALL.scan_text(text)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_iban_is_not_found(text: str) -> None:
    assert IBAN.scan_text(text) == []
    assert "IBAN" not in ALL.scan_text(text)


@pytest.mark.parametrize("iban", REGISTRY_EXAMPLES)
def test_checksum(iban: str) -> None:
    assert iban_ok(iban)
    assert IbanDetector().validate(iban)


@pytest.mark.parametrize(
    ("country", "length"),
    [
        ("DE", 22),
        ("GB", 22),
        ("FR", 27),
        ("NL", 18),
        ("BE", 16),
        ("CH", 21),
        ("NO", 15),
        ("ES", 24),
        ("IT", 27),
        ("AT", 20),
        ("PL", 28),
        ("SE", 24),
        ("IE", 22),
        ("PT", 25),
        ("FI", 18),
        ("LU", 20),
        ("MT", 31),
        ("DK", 18),
        ("LI", 21),
        ("IS", 26),
        ("GR", 27),
        ("CY", 28),
        ("EE", 20),
        ("LV", 21),
        ("LT", 20),
        ("SK", 24),
        ("SI", 19),
        ("HR", 21),
        ("HU", 28),
        ("CZ", 24),
        ("RO", 24),
        ("BG", 22),
        ("MC", 27),
        ("SM", 27),
        ("VA", 22),
    ],
)
def test_country_lengths(country: str, length: int) -> None:
    assert IBAN_FORMATS[country].length == length
