"""The normalized view: each rule of zoneapp.dlp.normalize, and what it leaves alone."""

from __future__ import annotations

import unicodedata

import pytest

from zoneapp.dlp.normalize import normalize


@pytest.mark.parametrize(
    ("raw", "view"),
    [
        ("plain ascii 123", "plain ascii 123"),
        ("tab\tnew\nline\r\x0b\x0c", "tab new line   "),
        ("４１１１", "4111"),  # NFKC
        ("＠", "@"),
        ("ﬁle", "file"),  # NFKC ligature
        ("٤١١١", "4111"),  # Arabic-Indic digits (Nd)
        ("۴۱۱۱", "4111"),  # Extended Arabic-Indic
        ("४१११", "4111"),  # Devanagari
        ("๔๑๑๑", "4111"),  # Thai
        ("41\u200b11", "4111"),  # zero-width space (Cf)
        ("41\u200d11\u200c", "4111"),  # joiners
        ("41\u00ad11", "4111"),  # soft hyphen
        ("41\u206011", "4111"),  # word joiner
        ("\ufeff4111", "4111"),  # BOM
        ("41\u200e11", "4111"),  # bidi mark
        ("4111\u00a01111", "4111 1111"),  # no-break space (Zs)
        ("4111\u202f1111", "4111 1111"),  # narrow no-break space
        ("4111\u30001111", "4111 1111"),  # ideographic space
        ("4111\u20281111", "4111 1111"),  # line separator (Zl)
        ("4111\u20291111", "4111 1111"),  # paragraph separator (Zp)
        ("4111\u20131111", "4111-1111"),  # en dash (Pd)
        ("4111\u20141111", "4111-1111"),  # em dash
        ("4111\u20111111", "4111-1111"),  # non-breaking hyphen
        ("4111\u22121111", "4111-1111"),  # the minus sign (Sm) too
        ("café", "cafe"),  # decomposed: marks come off composed letters too
        ("DE\u030889", "DE89"),  # a combining mark NFKC alone would compose into Ë
        ("GB82W\u0301EST", "GB82WEST"),
        ("".join(chr(0xE0000 + ord(c)) for c in "4111 a@b"), "4111 a@b"),  # tag characters
        ("078\u316405\u31641120", "078 05 1120"),  # Hangul filler: blank, so a space
        ("078\u280005\u28001120", "078 05 1120"),  # blank Braille pattern
        ("\x1b[1;36m4111\x1b[0m \x1b[1;36m1111\x1b[0m", "4111 1111"),  # ANSI colours
        ("41\x1b[01;31m\x1b[K11\x1b[m\x1b[K", "4111"),  # grep --color
        ("ｶｰﾄﾞ \x1b[32m4111\x1b[0m", "カ-ト 4111"),  # non-ASCII text with colours
    ],
)
def test_rules(raw: str, view: str) -> None:
    assert normalize(raw) == view


def test_every_decimal_digit_maps_to_ascii() -> None:
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) == "Nd":
            assert normalize(char) == str(unicodedata.digit(char)), hex(code)


def test_no_format_character_survives() -> None:
    """Removed, except the blank-looking Mongolian vowel separator (a space), the
    tag characters (their ASCII letter) and the right-to-left override (two orders)."""
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) == "Cf":
            expected = (
                "ab | ab"  # the stored order, and the order shown
                if code == 0x202E
                else "a b"
                if code == 0x180E
                else f"a{chr(code - 0xE0000)}b"
                if 0xE0020 <= code <= 0xE007E
                else "ab"
            )
            assert normalize(f"a{char}b") == expected, hex(code)


def test_ascii_fast_path_returns_the_same_object() -> None:
    text = "nothing to change here"
    assert normalize(text) is text


@pytest.mark.parametrize(
    ("raw", "view"),
    [
        ("❹❶❶❶", "4111"),  # dingbat digits (No)
        ("⑷⑴", "41"),  # parenthesized digits, before NFKC adds parentheses
        ("4፩፩", "411"),  # Ethiopic numerals
        ("4\u03011\ufe0f1\u20e31", "4111"),  # combining accent, variation selector, keycap
        ("4\u31641\u28001", "4 1 1"),  # Hangul filler, blank Braille pattern: blanks
        ("example\u3002com", "example.com"),  # ideographic full stop
        ("4111\u22121111", "4111-1111"),
    ],
)
def test_lookalikes_marks_and_fillers(raw: str, view: str) -> None:
    assert normalize(raw) == view


@pytest.mark.parametrize(
    "zero", [0x11F50, 0x1E4F0, 0x10D40, 0x11BF0, 0x16130, 0x16D70, 0x1E5F1, 0x1CCF0]
)
def test_digits_newer_than_this_interpreters_unicode_data(zero: int) -> None:
    """Kawi, Nag Mundari (Unicode 15), Garay, Sunuwar, Gurung Khema, Kirat Rai, Ol Onal,
    outlined digits (16): unassigned in Python 3.11's tables, still digits here."""
    assert normalize("".join(chr(zero + d) for d in (4, 1, 1, 1))) == "4111"
