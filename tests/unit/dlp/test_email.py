"""EMAIL: ASCII and internationalized addresses hit; handles and file names do not."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.unit.dlp.evasions import ENCODINGS
from zoneapp.dlp import build_scanner

EMAIL = build_scanner(["EMAIL"], [])

VALID = [
    "jane@example.com",
    "Jane.Doe@Example.COM",
    "jane.doe+tag@mail.example.co.uk",
    "o'brien@example.ie",
    "first_last-1@sub-domain.example.org",
    "contact me at jane@example.com.",
    "<jane@example.com>",
    "jane@xn--bcher-kva.example",  # punycode label
    "jane@example.xn--p1ai",  # punycode TLD
    "jane@bücher.de",  # IDN as typed
    "用户@例子.广告",  # Unicode local part and domain
    "δοκιμή@παράδειγμα.δοκιμή",
    "jane＠example.com",  # full-width at sign
    "JANE@EXAMPLE.COM",
    "jane%40example.com",  # percent-encoded
    "mailto:" + quote("jane@example.com"),
]
INVALID = [
    "@handle",
    "user@localhost",
    "logo@2x.png",
    "icon@1.5x.jpg",
    "a@b",
    "email at example dot com",
    "price@ 10.00",
    "foo@.com",
]


@pytest.mark.parametrize("text", VALID)
def test_addresses(text: str) -> None:
    assert EMAIL.scan_text(text) == ["EMAIL"], text


@pytest.mark.parametrize("text", INVALID)
def test_not_addresses(text: str) -> None:
    assert EMAIL.scan_text(text) == [], text


@pytest.mark.parametrize(("form", "fn"), ENCODINGS, ids=lambda x: str(x)[:20])
def test_every_encoding(form: str, fn: object) -> None:
    assert callable(fn)
    assert EMAIL.scan_text(fn("jane.doe@example.com")) == ["EMAIL"], form


def test_long_text_is_linear() -> None:
    """Only the character before each @ is looked at: no quadratic local-part match."""
    text = "a" * 200_000 + " x@y"
    assert EMAIL.scan_text(text) == []


def test_ideographic_full_stop_and_density_suffix() -> None:
    assert EMAIL.scan_text("john@example\u3002com") == ["EMAIL"]
    assert EMAIL.scan_text("x@2x.example.com") == ["EMAIL"]  # a real domain
    assert EMAIL.scan_text("logo@2x.png") == []
