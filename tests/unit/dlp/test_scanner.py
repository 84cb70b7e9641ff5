"""Scanner: path mapping, dedupe, ordering, and findings that never carry values."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterator
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoneapp.dlp import (
    BUILTIN_DETECTORS,
    CustomDetector,
    Detector,
    Finding,
    Scanner,
    build_scanner,
)

ALL = build_scanner(list(BUILTIN_DETECTORS), [])

CARD = "4111 1111 1111 1111"
SECRET_VALUES = [
    "4111111111111111",
    "536-90-4399",
    "DE89370400440532013000",
    "jane@example.com",
    "+14155552671",
]


def pairs(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.path, f.detector) for f in findings]


def test_builtin_names() -> None:
    assert set(BUILTIN_DETECTORS) == {"CREDIT_CARD", "US_SSN", "IBAN", "EMAIL", "PHONE"}
    for name, cls in BUILTIN_DETECTORS.items():
        assert cls.name == name
        assert re.fullmatch(r"[A-Z]+(?:_[A-Z]+)*", name)


@pytest.mark.parametrize("cls", list(BUILTIN_DETECTORS.values()))
def test_builtin_prefilters_compile_in_re(cls: type[Detector]) -> None:
    """Prefilters are in the engines' shared subset: no lookaround, no groups captured."""
    for mode, regex in cls.prefilters.items():
        assert "(?<" not in regex and "(?=" not in regex and "(?!" not in regex, mode
        re.compile(regex)


def test_every_builtin_hits_in_one_record() -> None:
    items = [
        ("card", "4111111111111111"),
        ("ssn", "536-90-4399"),
        ("iban", "DE89 3704 0044 0532 0130 00"),
        ("email", "jane@example.com"),
        ("phone", "(415) 555-2671"),
    ]
    assert pairs(ALL.scan(items)) == [
        ("card", "CREDIT_CARD"),
        ("ssn", "US_SSN"),
        ("iban", "IBAN"),
        ("email", "EMAIL"),
        ("phone", "PHONE"),
    ]


def test_path_mapping_across_joined_texts() -> None:
    items = [(f"items[{i}].note", f"line {i} 2026-11-{i + 10:02d} 12.50") for i in range(20)]
    items[0] = ("items[0].card", CARD)
    items[7] = ("items[7].card", "4012888888881881")
    items[8] = ("items[8].iban", "GB82WEST12345698765432")  # IBAN right at a text start
    items[13] = ("$headers.x-note", "reach me at jane@example.com")
    items[19] = ("$key", "+44 20 7946 0958")
    assert pairs(ALL.scan(items)) == [
        ("items[0].card", "CREDIT_CARD"),
        ("items[7].card", "CREDIT_CARD"),
        ("items[8].iban", "IBAN"),
        ("$headers.x-note", "EMAIL"),
        ("$key", "PHONE"),
    ]


def test_texts_do_not_run_into_each_other() -> None:
    # Each half is harmless; joined without a separator they would be a card,
    # an IBAN and a phone number.
    items = [
        ("a", "4111 1111"),
        ("b", "1111 1111"),
        ("c", "DE89"),
        ("d", "370400440532013000"),
        ("e", "+1"),
        ("f", "415 555 267"),
    ]
    assert ALL.scan(items) == []


def test_dedupe_per_path_and_detector() -> None:
    items = [
        ("a", f"{CARD} and 5555 5555 5555 4444"),
        ("a", "4012888888881881"),
        ("b", CARD),
        ("a", "jane@example.com"),
    ]
    assert pairs(ALL.scan(items)) == [("a", "CREDIT_CARD"), ("b", "CREDIT_CARD"), ("a", "EMAIL")]


def test_order_within_a_text_follows_the_detectors() -> None:
    text = "mail jane@example.com, call +14155552671, card 4111111111111111"
    assert ALL.scan_text(text) == ["CREDIT_CARD", "EMAIL", "PHONE"]


def test_a_longer_match_does_not_hide_another_detector() -> None:
    assert ALL.scan_text(f"{CARD} 415-555-2671") == ["CREDIT_CARD", "PHONE"]
    assert ALL.scan_text("4111111111111111@example.com") == ["CREDIT_CARD", "EMAIL"]
    # The card candidate "415-555-2671" fails; the phone at the same place is still found.
    assert ALL.scan_text("415-555-2671") == ["PHONE"]


def test_a_detector_of_its_own() -> None:
    """The Detector interface: prefilters for the engine, find() to validate."""

    class EvenFour(Detector):
        """Four digits with an even last digit (a stand-in checksum)."""

        name = "EVEN_FOUR"
        prefilters: ClassVar[dict[str, str]] = {"four": "[0-9]{4}"}

        def find(self, text: str, path: str, modes: Collection[str]) -> bool:
            assert modes == {"four"}
            return any(int(m.group()[-1]) % 2 == 0 for m in re.finditer("[0-9]{4}", text))

    scanner = Scanner([EvenFour()])
    assert scanner.scan_text("12345") == ["EVEN_FOUR"]
    assert scanner.scan_text("1235 1357") == []
    assert scanner.scan_text("no digits") == []


@pytest.mark.parametrize("value", SECRET_VALUES)
def test_finding_never_contains_the_value(value: str) -> None:
    findings = ALL.scan([("customer.field", f"x {value} y")])
    assert len(findings) == 1
    (finding,) = findings
    digits = re.sub(r"[^0-9A-Za-z]", "", value)
    for text in (repr(finding), str(finding), repr(findings)):
        assert value not in text
        assert digits not in text
        assert digits[-4:] not in text
    assert [f.name for f in dataclasses.fields(Finding)] == ["path", "detector"]


def test_finding_is_frozen_and_slotted() -> None:
    finding = Finding("a", "EMAIL")
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.path = "b"  # type: ignore[misc]
    assert not hasattr(finding, "__dict__")
    assert finding == Finding("a", "EMAIL")
    assert len({finding, Finding("a", "EMAIL")}) == 1


def test_items_may_be_any_iterable() -> None:
    def generate() -> Iterator[tuple[str, str]]:
        yield ("x", "nothing")
        yield ("y", CARD)

    assert pairs(ALL.scan(generate())) == [("y", "CREDIT_CARD")]
    assert pairs(ALL.scan((("y", CARD),))) == [("y", "CREDIT_CARD")]
    assert ALL.scan([]) == []
    assert ALL.scan([("empty", "")]) == []


def test_json_numbers_as_decimal_strings() -> None:
    record = {"amount": 1234.56, "ts": 1763788800000, "pan": 4111111111111111, "qty": 3}
    items = [(k, str(v)) for k, v in record.items()]
    assert pairs(ALL.scan(items)) == [("pan", "CREDIT_CARD")]


def test_scan_text_for_field_names() -> None:
    assert ALL.scan_text("customer_name") == []
    assert ALL.scan_text("jane@example.com") == ["EMAIL"]
    assert ALL.scan_text("4111111111111111") == ["CREDIT_CARD"]
    assert ALL.scan_text("536904399") == []  # no SSN field context in a bare text


def test_clean_sanitized_record() -> None:
    items = [
        ("event_id", "evt_01JD3K8M2Q7X9V4N6B5C"),
        ("ts", "1763788800000"),
        ("created_at", "2026-11-22T10:30:00Z"),
        ("customer.id", "tok_8fQ2xLm9Rk3vTz1w"),
        ("customer.email", "zenc1.q2xLm9Rk3vTz1wAbC-4_dEfGhIjKlMnOpQrStUvWxYz0123456789"),
        ("customer.name", "h1.Zm9vYmFyYmF6cXV4cXV1eA"),
        ("card.masked", "****-****-****-1881"),
        ("card.exp", "12/29"),
        ("ssn_last4", "***-**-6789"),
        ("items[0].price", "1234.56"),
        ("items[0].merchant", "Blue Bottle Coffee"),
        ("ip", "192.168.1.10"),
        ("note", "Delivered 2026-11-23 at 14:05, signed by recipient"),
    ]
    assert ALL.scan(items) == []


def test_unknown_builtin_is_named() -> None:
    with pytest.raises(ValueError, match="PASSPORT"):
        build_scanner(["CREDIT_CARD", "PASSPORT"], [])


def test_builtin_listed_twice_is_rejected() -> None:
    with pytest.raises(ValueError, match="EMAIL"):
        build_scanner(["EMAIL", "EMAIL"], [])


def test_empty_scanner_finds_nothing() -> None:
    scanner = build_scanner([], [])
    assert scanner.scan([("a", CARD)]) == []


def test_selected_builtins_only() -> None:
    scanner = build_scanner(["EMAIL"], [])
    assert scanner.scan_text(f"{CARD} jane@example.com") == ["EMAIL"]


def test_scanner_accepts_detector_instances() -> None:
    scanner = Scanner([BUILTIN_DETECTORS["IBAN"]()], [CustomDetector("TICKET", r"TCK-[0-9]+")])
    assert scanner.scan_text("TCK-1 NL91ABNA0417164300") == ["IBAN", "TICKET"]


def test_opaque_items_are_scanned_but_not_decoded() -> None:
    """Outputs of keyed transforms are not chosen by the producer: no decoding."""
    import base64

    encoded = base64.b64encode(CARD.encode()).decode()
    assert pairs(ALL.scan([("a", encoded)])) == [("a", "CREDIT_CARD")]
    assert ALL.scan([("a", encoded)], opaque={0}) == []
    assert pairs(ALL.scan([("a", CARD)], opaque={0})) == [("a", "CREDIT_CARD")]


# -- the undecodable cache ---------------------------------------------------------------


def test_undecodable_cache_holds_hashes_only_and_never_hides_a_value() -> None:
    import base64

    from zoneapp.dlp.scanner import _Undecodable

    scanner = build_scanner(list(BUILTIN_DETECTORS), [])
    clean = ("tenant", "initech-store-eu-west")  # a base64-alphabet token of random bytes
    hidden = ("notes", base64.b64encode(b"card 4111111111111111").decode())
    for _ in range(3):  # the second and third scans run with the cache warm
        assert scanner.scan([clean]) == []
        assert pairs(scanner.scan([clean, hidden])) == [("notes", "CREDIT_CARD")]
    seen = scanner._undecodable._seen
    assert seen and all(isinstance(h, int) for entries in seen.values() for h in entries)
    assert hash(clean[1]) in seen["base64"]
    assert hash(hidden[1]) not in seen["base64"]  # it decoded to text: never cached

    bounded = _Undecodable()
    for i in range(_Undecodable.LIMIT + 10):
        bounded.add("base64", f"token-{i}")
    assert 0 < len(bounded._seen["base64"]) <= _Undecodable.LIMIT


def test_undecodable_cache_is_off_with_a_known_hash_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoneapp.dlp.scanner import _Undecodable

    monkeypatch.setenv("PYTHONHASHSEED", "0")
    cache = _Undecodable()
    cache.add("base64", "initech-store-eu-west")
    assert not cache.known("base64", "initech-store-eu-west")
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    assert _Undecodable().enabled


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Lu", "Ll", "Lt"]), max_size=40))
def test_context_words_need_a_letter(text: str) -> None:
    """has_context answers False for a text without cased characters without searching:
    it holds only because no context pattern can match such a text."""
    from zoneapp.dlp.phone import PHONE_CONTEXT
    from zoneapp.dlp.ssn import SSN_CONTEXT

    if text.lower() == text.upper():
        for pattern in (PHONE_CONTEXT, SSN_CONTEXT):
            assert pattern.search(text) is None
