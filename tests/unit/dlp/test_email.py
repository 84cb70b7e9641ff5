"""EMAIL: local@domain.tld addresses; handles, local hosts and file names are not."""

from __future__ import annotations

import pytest

from zoneapp.dlp import BUILTIN_DETECTORS, build_scanner

EMAIL = build_scanner(["EMAIL"], [])
ALL = build_scanner(list(BUILTIN_DETECTORS), [])

VALID = [
    "john.doe@example.com",
    "first.last+tag@sub.example.co.uk",
    "USER@EXAMPLE.ORG",
    "a@b.io",
    "jane_doe99@mail.example.de",
    "o'brien@example.ie",
    "x-y@xn--bcher-kva.example",
    "contact: jane@example.com.",
    "<jane@example.com>",
    '{"email": "jane@example.com"}',
    "mailto:jane@example.com?subject=hi",
    "git@github.com",
]

INVALID = [
    "@handle",
    "hi @handle.com",  # no local part
    "user@localhost",  # no dotted domain
    "user@example",
    "user@example.c",  # one-letter TLD
    "user@127.0.0.1",  # numeric TLD
    "user@[127.0.0.1]",
    "user@",
    "@example.com",
    "user @example.com",
    "user@ example.com",
    "user@-example.com",
    "logo@2x.png",  # image density suffix
    "icon@3x.webp",
    "user@example.com1",
    "zenc1.SGVsbG8tV29ybGQ",
    "",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_email_is_found(text: str) -> None:
    assert EMAIL.scan_text(text) == ["EMAIL"]
    assert "EMAIL" in ALL.scan_text(text)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_email_is_not_found(text: str) -> None:
    assert EMAIL.scan_text(text) == []
    assert "EMAIL" not in ALL.scan_text(text)
