"""Custom (policy) detectors: any match of the policy's regex is a hit."""

from __future__ import annotations

import pytest

from zoneapp.dlp import BUILTIN_DETECTORS, CustomDetector, build_scanner

EMPLOYEE = ("EMPLOYEE_ID", r"\bEMP-[0-9]{6}\b")


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("EMP-123456", True),
        ("assigned to EMP-123456 today", True),
        ("(EMP-000001)", True),
        ("EMP-12345", False),
        ("EMP-1234567", False),
        ("XEMP-123456", False),
        ("emp-123456", False),
        ("", False),
    ],
)
def test_custom_regex_from_policy(text: str, hit: bool) -> None:
    scanner = build_scanner([], [EMPLOYEE])
    assert scanner.scan_text(text) == (["EMPLOYEE_ID"] if hit else [])


def test_custom_detector_any_nonempty_match() -> None:
    detector = CustomDetector(*EMPLOYEE)
    assert detector.name == "EMPLOYEE_ID"
    assert detector.pattern == EMPLOYEE[1]
    assert detector.find("x EMP-123456 y") and not detector.find("EMP-12345")


def test_custom_detectors_see_the_normalized_view() -> None:
    scanner = build_scanner([], [EMPLOYEE])
    assert scanner.scan_text("EMP\u2011123456") == ["EMPLOYEE_ID"]  # non-breaking hyphen
    assert scanner.scan_text("EMP-\uff11\uff12\uff13\uff14\uff15\uff16") == ["EMPLOYEE_ID"]
    assert scanner.scan_text("EMP-12\u200b3456") == ["EMPLOYEE_ID"]  # zero-width space


def test_custom_detectors_may_ignore_case() -> None:
    strict = build_scanner([], [EMPLOYEE])
    folded = build_scanner([], [(*EMPLOYEE, True)])
    assert strict.scan_text("emp-123456") == []
    assert folded.scan_text("emp-123456") == ["EMPLOYEE_ID"]
    # Folding is scoped to that detector when patterns are combined.
    both = build_scanner([], [(*EMPLOYEE, True), ("CODE", "XYZ-[0-9]{3}")])
    assert both.scan_text("xyz-123 emp-123456") == ["EMPLOYEE_ID"]


@pytest.mark.parametrize("pattern", ["(", "[0-9", "a{2,1}", "(?P<x>a)(?P<x>b)", "*x", "\\"])
def test_bad_regex_raises_with_detector_name(pattern: str) -> None:
    with pytest.raises(ValueError, match="ACCOUNT_REF"):
        CustomDetector("ACCOUNT_REF", pattern)
    with pytest.raises(ValueError, match="ACCOUNT_REF"):
        build_scanner(["CREDIT_CARD"], [("ACCOUNT_REF", pattern)])


@pytest.mark.parametrize("pattern", ["", "a*", "x?", "(?:ab)*", r"\b", "^", "$", "(?=a)", "a|"])
def test_regex_matching_the_empty_string_is_rejected(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"ACCOUNT_REF.*empty string"):
        CustomDetector("ACCOUNT_REF", pattern)


@pytest.mark.parametrize("name", ["account_ref", "Account", "ACCOUNT REF", "1ACCOUNT", "", "A__B"])
def test_name_must_be_upper_snake(name: str) -> None:
    with pytest.raises(ValueError, match="UPPER_SNAKE"):
        CustomDetector(name, "x")


def test_custom_name_may_not_shadow_a_builtin() -> None:
    with pytest.raises(ValueError, match="CREDIT_CARD"):
        build_scanner([], [("CREDIT_CARD", r"[0-9]{16}")])


def test_duplicate_custom_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="EMPLOYEE_ID"):
        build_scanner([], [EMPLOYEE, EMPLOYEE])


def test_anchors_apply_to_each_text() -> None:
    """Texts are scanned one by one, so ^ and $ mean the start and end of a field."""
    scanner = build_scanner([], [("ORDER_REF", r"^ORD[0-9]{4}$")])
    findings = scanner.scan([("a", "x"), ("b", "ORD1234"), ("c", "ORD1234 tail"), ("d", "ORD9")])
    assert [(f.path, f.detector) for f in findings] == [("b", "ORDER_REF")]


def test_matches_never_span_two_texts() -> None:
    scanner = build_scanner([], [("PAIR", r"foo\s+bar"), ("NOT_COMMA", r"[^,]{12}")])
    assert scanner.scan([("a", "foo"), ("b", "bar"), ("c", "short"), ("d", "tiny")]) == []


@pytest.mark.parametrize(
    "customs",
    [
        # combinable: one search per text decides whether any custom can hit
        [("EMPLOYEE_ID", r"\bEMP-[0-9]{6}\b"), ("SECRET", r"(?i:secret)")],
        # inline global flags and groups: searched one detector at a time
        [("EMPLOYEE_ID", r"\bEMP-[0-9]{6}\b"), ("SECRET", r"(?i)secret")],
        [("EMPLOYEE_ID", r"\b(EMP)-[0-9]{6}\b"), ("SECRET", r"(s)ecret|SECRET")],
    ],
)
def test_several_custom_detectors(customs: list[tuple[str, str]]) -> None:
    scanner = build_scanner(["CREDIT_CARD"], customs)
    findings = scanner.scan(
        [
            ("a", "nothing here"),
            ("b", "top SECRET for EMP-123456"),
            ("c", "secret"),
            ("d", "4111111111111111 EMP-654321"),
        ]
    )
    assert [(f.path, f.detector) for f in findings] == [
        ("b", "EMPLOYEE_ID"),
        ("b", "SECRET"),
        ("c", "SECRET"),
        ("d", "CREDIT_CARD"),
        ("d", "EMPLOYEE_ID"),
    ]


def test_backreferences_keep_their_meaning() -> None:
    """Patterns with groups are never merged, so \\1 still refers to their own group."""
    scanner = build_scanner([], [("A_REPEAT", r"(a)\1"), ("B_REPEAT", r"(b)\1")])
    assert scanner.scan_text("xbbx") == ["B_REPEAT"]
    assert scanner.scan_text("xbax") == []


def test_custom_and_builtins_together() -> None:
    scanner = build_scanner(list(BUILTIN_DETECTORS), [EMPLOYEE])
    assert scanner.scan_text("EMP-123456 paid with 4111 1111 1111 1111") == [
        "CREDIT_CARD",
        "EMPLOYEE_ID",
    ]


def test_empty_matches_are_never_findings() -> None:
    """(?=Z) passes the constructor's probes but can only match empty."""
    scanner = build_scanner([], [("ONLY_LOOKAHEAD", "(?=Z)")])
    assert scanner.scan_text("xyZ") == []
