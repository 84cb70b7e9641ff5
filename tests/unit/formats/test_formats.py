"""The shared text forms: one base64url and one UTC timestamp for every layer."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from zoneapp.formats import b64url, parse_utc, unb64url, utc_iso


@pytest.mark.parametrize("size", [0, 1, 2, 3, 31, 32, 33])
def test_b64url_round_trips_without_padding(size: int) -> None:
    data = bytes(range(256))[:size] if size else b""
    text = b64url(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert unb64url(text) == data == unb64url(text, canonical=True)


def test_unb64url_refuses_non_canonical_text_when_asked() -> None:
    text = b64url(b"\xff")  # "_w": the last character carries 4 unused bits
    altered = text[:-1] + "x"
    assert unb64url(altered) == b"\xff"  # lenient decoders accept it...
    with pytest.raises(ValueError, match="non-canonical"):
        unb64url(altered, canonical=True)  # ...a ciphertext parser must not


@pytest.mark.parametrize("text", ["a", "ab$d", "abcde"])
def test_unb64url_refuses_what_is_not_base64url(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        unb64url(text)


def test_b64url_matches_the_standard_library() -> None:
    data = b"\xfb\xff\xfe" * 5
    assert b64url(data) == base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_utc_iso_from_an_epoch_a_datetime_and_now() -> None:
    assert utc_iso(0) == "1970-01-01T00:00:00.000Z"
    paris = dt.datetime(2026, 12, 1, 13, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert utc_iso(paris) == "2026-12-01T12:00:00.123Z"
    assert utc_iso(0, timespec="seconds") == "1970-01-01T00:00:00Z"
    before = dt.datetime.now(dt.UTC).timestamp()
    assert before - 1 <= parse_utc(utc_iso()) <= before + 1


def test_parse_utc_reads_z_offsets_and_naive_times_as_utc() -> None:
    assert parse_utc("1970-01-01T00:00:01.500Z") == 1.5
    assert parse_utc("1970-01-01T01:00:00+01:00") == 0.0
    assert parse_utc("1970-01-01T00:00:02") == 2.0
