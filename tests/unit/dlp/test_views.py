"""Decoded and joined views: each decoder, its bounds, and split values."""

from __future__ import annotations

import base64
import json
import random
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoneapp.dlp import BUILTIN_DETECTORS, DECODE_LIMIT, Limits, Scanner, build_scanner
from zoneapp.dlp.views import decode, joined_views

ALL = build_scanner(list(BUILTIN_DETECTORS), [])
CARD = "4111 1111 1111 1111"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_percent_decoding() -> None:
    assert decode("a%40b.c", "percent") == ["a@b.c"]
    assert decode("x+4111+1111", "percent") == ["x 4111 1111"]
    assert ALL.scan_text("https://x.example/?card%3D" + quote(CARD)) == ["CREDIT_CARD"]


def test_base64_tokens() -> None:
    assert decode(b64(CARD), "base64") == [CARD]
    # One stray byte (not UTF-8) does not hide the rest of the text.
    urlsafe = base64.urlsafe_b64encode(b"\xfb" + CARD.encode()).decode()
    assert [CARD in d for d in decode(urlsafe, "base64")] == [True]
    assert decode("x" + b64(CARD + "!"), "base64") == [CARD + "!"]  # padded: realigned
    assert decode("short", "base64") == []
    assert ALL.scan_text(f"data: {b64(CARD)} end") == ["CREDIT_CARD"]


def test_random_bytes_are_not_decoded() -> None:
    """Ciphertexts are random bytes: no decoding of them passes as text; now and then
    a misaligned read is half printable and gives its strings(1) runs, which are
    scanned and hold nothing."""
    rng = random.Random(1)
    with_views = 0
    for size in (24, 48, 96, 300):
        for _ in range(200):
            token = base64.b64encode(rng.randbytes(size)).decode()
            views = decode(token, "base64")
            with_views += bool(views)
            assert not any(ALL.scan([("v", view)]) for view in views)
    assert with_views <= 0.02 * 800


def test_json_in_strings() -> None:
    doc = json.dumps({"a": [1, {"b": CARD}], "k" + "ey": "x"})
    assert CARD in decode(doc, "json")
    assert decode("[not json", "json") == []
    assert ALL.scan([("meta", doc)])[0].detector == "CREDIT_CARD"


def test_nested_encodings_are_followed() -> None:
    inner = json.dumps({"note": f"card {CARD}"})
    assert ALL.scan_text(quote(b64(inner))) == ["CREDIT_CARD"]


def test_decoding_deeper_than_the_limit_is_a_finding() -> None:
    text = CARD
    for _ in range(4):
        text = b64(text + " padding")
    scanner = Scanner(ALL.detectors, limits=Limits(depth=3))
    assert [f.detector for f in scanner.scan([("blob", text)])] == [DECODE_LIMIT]
    deep_enough = Scanner(ALL.detectors, limits=Limits(depth=5))
    assert [f.detector for f in deep_enough.scan([("blob", text)])] == ["CREDIT_CARD"]


def test_too_many_views_is_a_finding() -> None:
    doc = json.dumps([f"s{i}" for i in range(50)])
    scanner = Scanner(ALL.detectors, limits=Limits(views=20))
    assert [(f.path, f.detector) for f in scanner.scan([("a", "ok"), ("b", doc)])] == [
        ("b", DECODE_LIMIT)
    ]
    assert build_scanner(list(BUILTIN_DETECTORS), []).scan([("b", doc)]) == []


@pytest.mark.parametrize(
    ("values", "joined"),
    [
        (["4111", "1111", "1111", "1111"], "4111111111111111"),
        ([4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "4111111111111111"),
        (["2024", "4111", "1111", "1111", "1111"], "2024 4111 1111 1111 1111"),
        # inner arrays of more than one scalar, objects of one key, empty ones between
        ([[4111, 1111], [1111, 1111]], "4111111111111111"),
        ([[["4111"], ["1111"]], [["1111", "1111"]]], "4111111111111111"),
        ([{"a": "4111"}, {"b": "1111"}, {"c": "1111"}, {"d": "1111"}], "4111111111111111"),
        (["4111", [], "1111", {}, "1111", "1111"], "4111111111111111"),
        # one key across sibling objects, other keys beside it
        (
            [{"d": "4111", "n": "x"}, {"d": "1111"}, {"d": "1111"}, {"d": "1111"}],
            "4111111111111111",
        ),
        ([{"ssn": "078"}, {"ssn": "05"}, {"ssn": "1120"}], "078 05 1120"),
    ],
)
def test_split_values_are_joined(values: list[object], joined: str) -> None:
    assert joined in joined_views(values)


def test_numbers_of_sibling_objects_are_not_joined() -> None:
    """A cart's quantities and prices are not pieces of a number: joined, ten order
    lines' quantities read as a phone number and fifteen as a card by chance."""
    lines = [
        {"sku": "A", "qty": q, "price": p}
        for q, p in zip([1, 2, 1, 1, 1, 3, 1, 1, 2, 1], [45.99, 25] * 5, strict=True)
    ]
    assert joined_views(lines) == []


def test_fractional_numbers_break_a_run() -> None:
    """Coordinates and measurements: ``[-66.56689, 46.76254]`` joined was a card one
    time in 20; whole floats still join (``4111.0`` is 4111)."""
    assert joined_views([-66.56689, 46.76254]) == []
    assert "4111111111111111" in joined_views([4111.0, 1111.0, 1111, 1111])


def test_long_items_break_a_run() -> None:
    views = joined_views(["4111", "a long sentence here", "1111", "1111"])
    assert "41111111" not in "".join(views)
    assert "11111111" in views


@pytest.mark.parametrize(
    "text",
    [
        # MIME base64, wrapped mid-value
        "eXl5eXl5IDQxMTEx\nMTExMTExMTExMTE=",
        # a token printed in groups
        "NDEx MTEx MTEx MTEx MTEx MQ==",
        # a UTF-8 BOM, cp1252 text, UTF-16LE, a NUL, an escape code inside
        "77u/NDExMTExMTExMTExMTExMQ==",
        "S3VuZGUgTfxsbGVyIEthcnRlIDQxMTExMTExMTExMTExMTE=",
        "YwBhAHIAZAAgADQAMQAxADEAMQAxADEAMQAxADEAMQAxADEAMQAxADEA",
        "eyJjYXJkIjoiNDExMTExMTExMTExMTExMSIsInBhZCI6IgAifQ==",
        "G1swbTQxMTExMTExMTExMTExMTE=",
        # UTF-16BE (with and without BOM) and UTF-32 under base64
        "AGMAYQByAGQAIAA0ADEAMQAxADEAMQAxADEAMQAxADEAMQAxADEAMQAx",
        "/v8AYwBhAHIAZAAgADQAMQAxADEAMQAxADEAMQAxADEAMQAxADEAMQAxADE=",
        "//4AAGMAAABhAAAAcgAAAGQAAAAgAAAANAAAADEAAAAxAAAAMQAAADEAAAAxAAAAMQAAADEAAAAxAAAAMQAA"
        "ADEAAAAxAAAAMQAAADEAAAAxAAAAMQAAAA==",
        # base64 lines of an odd width after a MIME part's headers
        "Content-Transfer-Encoding: base64\n\nYWFhYWFhYWFhYWE\ngNDExMTExMTExMTE\nxMTExMSB6eg==",
        # hex: bare, after 0x, a glued digit in front, hexdump and colon separated
        "636172642034313131313131313131313131313131",
        "id=0x34313131313131313131313131313131;",
        "f34313131313131313131313131313131",
        "34 31 31 31 31 31 31 31 31 31 31 31 31 31 31 31",
        "34:31:31:31:31:31:31:31:31:31:31:31:31:31:31:31",
        # escapes and character references
        "\\u0034111111111111111",
        '{"c":"\\u0034111111111111111"} trailing',
        "&#52;&#49;&#49;&#49;111111111111",
        "&#x34;111111111111111",
        '"\\uff14\\uff11\\uff11\\uff11111111111111"',
    ],
)
def test_decoders_from_the_review(text: str) -> None:
    assert ALL.scan_text(text) == ["CREDIT_CARD"], text


def test_short_unpadded_base64() -> None:
    assert ALL.scan_text("MjE5LTA5LTk5OTk") == ["US_SSN"]
    assert ALL.scan_text("Ym9iQGFjbWUuaW8") == ["EMAIL"]


# -- the quick test before a decoded token is read as text -----------------------------

_TEXTY = st.one_of(
    st.binary(max_size=48),
    st.text(max_size=24).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.text(max_size=24).map(lambda t: t.encode("utf-16-le", "surrogatepass")),
    st.text(max_size=24).map(lambda t: t.encode("utf-16-be", "surrogatepass")),
    st.text(max_size=12).map(lambda t: t.encode("utf-32", "surrogatepass")),
    st.lists(st.sampled_from([b"a", b" ", b"\x00", b"\x01", b"\x80", b"\xc3\xa9", b"\t"])).map(
        b"".join
    ),
)


@settings(max_examples=3000, deadline=None)
@given(_TEXTY)
def test_the_quick_test_never_refuses_what_as_text_accepts(raw: bytes) -> None:
    """_maybe_text may only say False where _as_text says None: it skips work, never a view."""
    from zoneapp.dlp.views import _as_text, _junk, _maybe_text

    if _as_text(raw) is not None:
        assert _maybe_text(raw, _junk(raw))


def test_the_quick_test_refuses_random_bytes() -> None:
    from zoneapp.dlp.views import _junk, _maybe_text

    rng = random.Random(5)
    refused = sum(not _maybe_text(raw, _junk(raw)) for raw in map(rng.randbytes, [15] * 1000))
    assert refused > 900  # what an id read as base64 decodes to


@pytest.mark.parametrize("width", [5, 7, 9, 13, 60, 64, 76, 77])
def test_base64_wrapped_at_any_width_is_found(width: int) -> None:
    body = base64.b64encode(("note: card 4111111111111111 exp 12/28 " * 3).encode()).decode()
    wrapped = "\n".join(body[k : k + width] for k in range(0, len(body), width))
    assert [f.detector for f in ALL.scan([("n", wrapped)])] == ["CREDIT_CARD"]


def test_base64_with_a_stray_break_anywhere_is_found() -> None:
    token = base64.b64encode(CARD.encode()).decode()
    for at in range(1, len(token)):
        for sep in ("\n", " ", "\r\n"):
            text = token[:at] + sep + token[at:]
            assert "CREDIT_CARD" in {f.detector for f in ALL.scan([("n", text)])}, (at, sep)
