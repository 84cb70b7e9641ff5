"""Inputs built to make a scanner slow or to slip between its rules.

Each case must finish (no quadratic or exponential path) and give the right answer.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from zoneapp.dlp import BUILTIN_DETECTORS, DECODE_LIMIT, build_scanner

ALL = build_scanner(list(BUILTIN_DETECTORS), [("EMPLOYEE_ID", r"\bEMP-[0-9]{6}\b")])
BIG = 250_000


#: Seconds one scan of a pathological text may take: each takes under 0.3 s here (2
#: cores, December 2026), so a quadratic path fails this by far, a busy machine does not.
BUDGET = 5.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 " * (BIG // 2), []),
        ("+" + "1 " * (BIG // 2), ["PHONE"]),  # "+1 1 1 ..." starts like a NANP number
        ("0" * BIG, []),
        ("a" * BIG + "@", []),
        ("a@" * (BIG // 2), []),
        ("%41" * (BIG // 3), []),
        ("A" * BIG, []),
        ("DE89" * (BIG // 4), []),
        ("(" * BIG + "1", []),
        ("1-" * (BIG // 2), []),
        ("[" * 1000 + "]" * 1000, []),
        ("\u200b" * BIG, []),
        ("４" * BIG, []),
        # Many distinct tokens that each decode to text: each is put back in one pass.
        (
            " ".join(base64.b64encode(f"ABCDEFGH{i:06d}".encode()).decode() for i in range(3000)),
            [],
        ),
    ],
    ids=lambda v: repr(v[:12]) if isinstance(v, str) else None,
)
def test_pathological_texts_finish(text: str, expected: list[str]) -> None:
    started = time.perf_counter()
    findings = ALL.scan([("notes", text)])
    took = time.perf_counter() - started
    assert took < BUDGET, f"{took:.1f}s for one record"
    assert sorted({f.detector for f in findings}) == expected
    assert all(f.path == "notes" for f in findings)


def test_a_value_at_the_end_of_a_huge_text_is_found() -> None:
    text = "lorem ipsum " * 20_000 + "card 4111 1111 1111 1111"
    assert [f.detector for f in ALL.scan([("notes", text)])] == ["CREDIT_CARD"]


def test_deeply_nested_json_in_a_string() -> None:
    doc: object = "4111111111111111"
    for _ in range(200):
        doc = [doc]
    assert [f.detector for f in ALL.scan([("notes", json.dumps(doc))])] == ["CREDIT_CARD"]


def test_many_base64_tokens() -> None:
    token = base64.b64encode(b"harmless words here").decode()
    clean = " ".join([token] * 3000)
    assert [f.detector for f in ALL.scan([("notes", clean)])] == []
    # The same token many times is decoded once; 5,000 different ones are too many views.
    assert ALL.scan([("notes", " ".join([token] * 5000))]) == []
    many = " ".join(base64.b64encode(f"harmless {i:05d}".encode()).decode() for i in range(5000))
    assert [f.detector for f in ALL.scan([("notes", many)])] == [DECODE_LIMIT]


def test_value_split_across_views_of_one_record_is_not_joined_across_fields() -> None:
    """Two fields are two texts: the scanner never joins neighbours' digits."""
    assert ALL.scan([("a", "4111 1111"), ("b", "1111 1111")]) == []
