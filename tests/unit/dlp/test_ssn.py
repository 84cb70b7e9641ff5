"""US_SSN: valid ranges in every form hit; never-issued numbers and look-alikes do not."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.dlp.evasions import ENCODINGS, FORMATTING
from zoneapp.dlp import build_scanner
from zoneapp.dlp.engine import ENGINES
from zoneapp.dlp.ssn import ssn_ok

SSN = build_scanner(["US_SSN"], [])

VALID = [
    "078-05-1123",
    "219-45-6789",
    "536-90-4399",
    "001-01-0001",  # lowest area, group and serial
    "665-99-9999",  # just below 666
    "667-01-0001",
    "899-99-9999",  # highest valid area
    "078-05-1120",  # published (Woolworth card): blocked by decision
    "219-09-9999",  # published (1940s advertising): blocked by decision
]
SEPARATED = [
    "078 05 1123",
    "078.05.1123",
    "078/05/1123",
    "078_05_1123",
    "078-05 1123",  # mixed
    "078 - 05 - 1123",
    "ssn078-05-1123x",  # glued to letters
]
BARE_WITH_CONTEXT = [
    ("notes", "SSN: 078051123"),
    ("notes", "ss# 078051123"),
    ("notes", "Social Security 078051123"),
    ("notes", "soc sec no 078051123"),
    ("customer.ssn", "078051123"),
    ("customer.ssn", "78051123"[:0] + "219456789"),
    ("employee_ssn_number", "219456789"),
    ("notes.SSN", "219456789"),
]
#: With a context word, 9 digits in any grouping of whole groups are an SSN.
ANY_GROUPING_WITH_CONTEXT = [
    ("notes", "ssn 536 904 399"),
    ("notes", "SSN: 5369-04399"),
    ("notes", "SSN 53 690 4399"),
    ("notes", "ssn 5.3.6.9.0.4.3.9.9"),
    ("notes", "ssn 536904 399"),
    ("notes", "ssn_536_904_399"),
    ("notes", "SSN: ref 12 536 904 399 7"),  # a slice of whole groups in a longer run
    ("notes", "Soc. Sec. No. 536904399"),
    ("notes", "soc. sec. # 536 904 399"),
    ("notes", "Social. Security 5369 04399"),
    ("customer.ssn", "536 904 399"),
    ("employeeSSN", "5369-04399"),
]
#: Context present, but not 9 valid digits in whole groups.
CONTEXT_NEAR_MISSES = [
    ("notes", "ssn 536 904 39"),  # 8 digits
    ("notes", "SSN: 5369-043991"),  # 10
    ("notes", "ssn 15369-04399"),  # 9 only by cutting a group
    ("notes", "ssn 000 904 399"),  # area 000
    ("notes", "ssn 966 904 399"),  # area 9xx
    ("notes", "ssn 536 004 399"),  # group 00
    ("notes", "ssn 536 910 000"),  # serial 0000
    ("notes", "SSN on file, call 415 555 2671"),
    ("notes", "ssn checked 2026-11-23 14:05"),
    ("customer.ssn", "5369-043991"),
]
#: Other groupings without context stay ids, amounts and pieces of phone numbers.
OTHER_GROUPING_NO_CONTEXT = [
    "536 904 399",
    "5369-04399",
    "order 53 690 4399",
    "amount 536.904.399",
    "ref 12 536 904 399 7",
    "soc...sec 536904399",  # more than two characters between the halves
]
INVALID = [
    "000-12-3456",  # area 000
    "666-12-3456",  # area 666
    "900-12-3456",  # area 9xx
    "999-99-9999",
    "123-00-4567",  # group 00
    "123-45-0000",  # serial 0000
    "078051123",  # bare, no context
    "order 219456789 shipped",
    "classname 219456789",  # "ssn" inside a word is no context
    "1234-56-7890",  # 4-2-4
    "12-345-6789",
    "078-05-11234",  # 3-2-5
    "2026-11-23",
    "1.234.567,89",
]


@pytest.mark.parametrize("text", VALID + SEPARATED)
def test_grouped_ssn_anywhere(text: str) -> None:
    assert SSN.scan_text(text) == ["US_SSN"], text


@pytest.mark.parametrize(("path", "text"), BARE_WITH_CONTEXT)
def test_bare_ssn_with_context(path: str, text: str) -> None:
    assert [f.detector for f in SSN.scan([(path, text)])] == ["US_SSN"]


def test_nine_digit_integer_at_ssn_path() -> None:
    assert [f.detector for f in SSN.scan([("customer.ssn", str(219456789))])] == ["US_SSN"]
    assert SSN.scan([("customer.id", str(219456789))]) == []


@pytest.mark.parametrize("text", INVALID)
def test_invalid_and_look_alikes(text: str) -> None:
    assert SSN.scan([("notes", text)]) == [], text


@pytest.mark.parametrize(("form", "fn"), FORMATTING + ENCODINGS, ids=lambda x: str(x)[:20])
def test_every_evasion_class(form: str, fn: object) -> None:
    assert callable(fn)
    assert SSN.scan_text(fn("078-05-1123")) == ["US_SSN"], (form, fn("078-05-1123"))


def test_ssa_rules() -> None:
    assert ssn_ok("078051123")
    assert not any(ssn_ok(n) for n in ("000123456", "666123456", "900123456", "123004567"))
    assert not ssn_ok("123450000")


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("customer.socialSecurityNumber", "219099999"),
        ("employeeSSN", "219099999"),
        ("user.ssnLast", "219099999"),
        ("taxpayer.SocSecNo", "219099999"),
        ("notes", "mySSN 219099999"),
        ("notes", "S.S.N. 219099999"),
    ],
)
def test_context_words_in_camel_case(path: str, text: str) -> None:
    assert [f.detector for f in SSN.scan([(path, text)])] == ["US_SSN"]


def test_wide_separator_runs() -> None:
    assert SSN.scan_text("219    09    9999") == ["US_SSN"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("path", "text"), ANY_GROUPING_WITH_CONTEXT)
def test_any_grouping_with_context(engine: str, path: str, text: str) -> None:
    """Both engines: the prefilter must cover every grouping find() accepts."""
    scanner = SSN if engine == "hyperscan" else build_scanner(["US_SSN"], [], engine=engine)
    assert [f.detector for f in scanner.scan([(path, text)])] == ["US_SSN"], text


@pytest.mark.parametrize(("path", "text"), CONTEXT_NEAR_MISSES)
def test_context_near_misses(path: str, text: str) -> None:
    assert SSN.scan([(path, text)]) == [], text


@pytest.mark.parametrize("text", OTHER_GROUPING_NO_CONTEXT)
def test_other_groupings_need_context(text: str) -> None:
    assert SSN.scan([("notes", text)]) == [], text


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.sets(st.integers(1, 8), max_size=8),
    seps=st.lists(st.sampled_from([" ", "-", ".", "/", "_", " - ", "  "]), min_size=8, max_size=8),
)
def test_every_grouping_with_context_is_found(cuts: set[int], seps: list[str]) -> None:
    digits = "536904399"
    bounds = [0, *sorted(cuts), 9]
    groups = [digits[a:b] for a, b in pairwise(bounds)]
    value = groups[0] + "".join(sep + g for sep, g in zip(seps, groups[1:], strict=False))
    assert [f.detector for f in SSN.scan([("notes", f"SSN {value}")])] == ["US_SSN"], value
