"""Forms a red-team review of 2026-12-02 found crossing, or falsely blocked; each is
checked here as it was reported (generated values, fixed seeds)."""

from __future__ import annotations

import base64
import datetime
import json
import random
import uuid

import pytest

from zoneapp.dlp import BUILTIN_DETECTORS, build_scanner

ALL = build_scanner(list(BUILTIN_DETECTORS), [])


def found(*pairs: tuple[str, str]) -> list[str]:
    return sorted({f.detector for f in ALL.scan(list(pairs))})


@pytest.mark.parametrize(
    ("path", "value", "detector"),
    [
        # Field names written as one lower-case word.
        ("socialsecuritynumber", "078051120", "US_SSN"),
        ("patient.empssn", "078051120", "US_SSN"),
        ("ssnid", "078051120", "US_SSN"),
        ("homephone", "2125550123", "PHONE"),
        ("phonenumber", "2125550123", "PHONE"),
        ("patient.telecom.value", "2125550123", "PHONE"),
        # An SSN stored as a number lost its leading zero.
        ("ssn", "78051120", "US_SSN"),
    ],
)
def test_context_in_field_names(path: str, value: str, detector: str) -> None:
    assert found((path, value)) == [detector]


@pytest.mark.parametrize("path", ["businessnumber", "classname", "account", "order.id", "lessons"])
def test_names_that_only_contain_the_letters_give_no_context(path: str) -> None:
    assert found((path, "078051120")) == []


def test_a_sibling_system_names_the_value() -> None:
    """FHIR's identifier and telecom: the kind of value is in the next field."""
    ssn = [("identifier[0].system", "http://hl7.org/fhir/sid/us-ssn"),
           ("identifier[0].value", "078051120")]  # fmt: skip
    phone = [("telecom[1].system", "phone"), ("telecom[1].value", "2125550123")]
    npi = [("identifier[0].system", "http://hl7.org/fhir/sid/us-npi"),
           ("identifier[0].value", "078051120")]  # fmt: skip
    assert found(*ssn) == ["US_SSN"]
    assert found(*phone) == ["PHONE"]
    assert found(*npi) == []
    # Only the fields of one object: another object's "phone" is not the context.
    assert found(("a.system", "phone"), ("b.value", "2125550123")) == []


def test_iso_timestamps_with_microseconds_and_a_zone_are_not_phones() -> None:
    rng = random.Random(1)
    start = datetime.datetime(2020, 1, 1)
    for _ in range(1000):
        zone = datetime.timezone(datetime.timedelta(hours=rng.randrange(-12, 13)))
        moment = start.replace(tzinfo=zone) + datetime.timedelta(
            minutes=rng.randrange(10**6), microseconds=rng.randrange(10**6)
        )
        assert found(("at", moment.isoformat())) == [], moment.isoformat()


def test_trace_headers_and_hex_digests_are_rarely_blocked() -> None:
    """W3C traceparent and SHA digests: digit runs glued to hex letters are ids (an
    "00" run too); what remains is chance (a Luhn-valid run inside the hex)."""
    rng = random.Random(2)
    trace = [f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01" for _ in range(2000)]
    digests = [f"{rng.getrandbits(256):064x}" for _ in range(2000)]
    assert sum(bool(found(("traceparent", t))) for t in trace) <= 4
    assert sum(bool(found(("sha", d))) for d in digests) <= 20


def test_jwts_with_numeric_claims_are_rarely_blocked() -> None:
    """Random base64 signatures no longer spell context words ("…3PH0…", "…WPhCo…")."""
    rng = random.Random(3)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    blocked = 0
    for _ in range(2000):
        claims = {"sub": str(rng.randrange(10**8, 10**9)), "iat": rng.randrange(10**9, 2 * 10**9)}
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        signature = base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip("=")
        blocked += bool(found(("authorization", f"{header}.{payload}.{signature}")))
    assert blocked <= 4


@pytest.mark.parametrize("amount", ["518 219 135.57", "123 456 789.00", "1.234.567,89"])
def test_grouped_amounts_with_cents_are_not_phones(amount: str) -> None:
    assert found(("total", amount)) == []


def test_uuids_with_digit_runs_next_to_letters_are_not_phones() -> None:
    rng = random.Random(4)
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(3000)]
    assert sum("PHONE" in found(("x-request-id", i)) for i in ids) <= 3


# -- a second review of the same day -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        ("user=42 telNo=2125550123", "PHONE"),
        ("homeTel: 2125550123", "PHONE"),
        ("faxNo 2125550123", "PHONE"),
        ("ssnNo=078051120", "US_SSN"),
        ("mySsn 078051120", "US_SSN"),
        ("contact phone0049301234567", "PHONE"),
    ],
)
def test_short_key_words_still_give_context(text: str, detector: str) -> None:
    assert found(("notes", text)) == [detector]


def test_an_issn_is_not_an_ssn() -> None:
    assert found(("journal.issn", "03785955")) == []


def test_plain_bytes_after_a_gzip_member_are_read() -> None:
    import gzip

    blob = gzip.compress(b"hello") + b" my ssn is 078-05-1120, card 4111 1111 1111 1111 "
    assert found(("blob", base64.b64encode(blob).decode())) == ["CREDIT_CARD", "US_SSN"]


def test_ordinary_markup_and_many_lists_are_not_quarantined() -> None:
    assert found(("html", "<p>item?id=12 &amp; x = y</p>")) == []
    polyline = "polyline: " + " ".join(f"[{i},{i + 1}]" for i in range(2100))
    assert found(("shape", polyline)) == []


def test_a_one_line_base64_attachment_is_scanned_in_linear_time() -> None:
    import os
    import time

    body = base64.b64encode(os.urandom(200_000)).decode()
    started = time.perf_counter()
    ALL.scan([("mail", "Content-Type: application/pdf\r\n\r\n" + body)])
    assert time.perf_counter() - started < 5.0  # was minutes: quadratic


def test_compressed_tokens_share_one_budget_per_record() -> None:
    """48 bombs of 4 MB each: quarantined without inflating them all."""
    import time
    import zlib

    tokens = [
        base64.b64encode(zlib.compress(b"a" * (4 << 20) + str(i).encode())).decode()
        for i in range(48)
    ]
    started = time.perf_counter()
    assert found(("blob", " x ".join(tokens))) == ["DECODE_LIMIT"]
    assert time.perf_counter() - started < 5.0


# A second red-team review and public suites (Presidio, scrubadub, CommonRegex,
# libphonenumber's examples), 2026-12-02 afternoon.

TAGGED = "".join(chr(0xE0000 + ord(c)) for c in "4111111111111111")


@pytest.mark.parametrize(
    ("pairs", "detector"),
    [
        # ANSI colours (coloured logs, grep --color), raw and JSON-escaped.
        (
            [("log", "card \x1b[1;36m4111\x1b[0m \x1b[1;36m1111\x1b[0m 1111 \x1b[1m1111\x1b[0m")],
            "CREDIT_CARD",
        ),
        ([("log", "card \\u001b[1m4111\\u001b[0m 1111 1111 1111")], "CREDIT_CARD"),
        ([("log", "4111 1111 \x1b[01;31m\x1b[K1111\x1b[m\x1b[K 1111")], "CREDIT_CARD"),
        ([("log", "\x1b[32mjohn.doe\x1b[0m@\x1b[32mexample.com\x1b[0m")], "EMAIL"),
        # An unterminated escape keeps the digits after it.
        ([("log", "\x1b[4111\u200b1111\u200b1111\u200b1111")], "CREDIT_CARD"),
        ([("log", "SSN \x1b[078\u200b05\u200b1120")], "US_SSN"),
        ([("log", "3\x1b78282246310005")], "CREDIT_CARD"),  # "ESC 7" is no escape here
        # Context anywhere in the text (FHIR telecom as JSON text).
        (
            [("notes", '{"system": "phone", "use": "home", "rank": 1, "value": "2125550123"}')],
            "PHONE",
        ),
        ([("notes", "Phone 1: 2125550123")], "PHONE"),
        # Combining marks on an IBAN's letters; tag characters; blank fillers.
        ([("notes", "DE\u030889370400440532013000")], "IBAN"),
        ([("notes", "GB82W\u0301EST12345698765432")], "IBAN"),
        ([("notes", TAGGED)], "CREDIT_CARD"),
        ([("notes", "078\u316405\u31641120")], "US_SSN"),
        ([("notes", "078\u280005\u28001120")], "US_SSN"),
        # A text escaped twice.
        ([("notes", "4111\\\\u00a01111\\\\u00a01111\\\\u00a01111")], "CREDIT_CARD"),
        # SSN context words and a form's label next to its answer.
        ([("notes", "TIN 078051120")], "US_SSN"),
        ([("notes", "tax id: 078051120")], "US_SSN"),
        ([("notes", "social: 078051120")], "US_SSN"),
        ([("form.label", "SSN"), ("form.text", "078051120")], "US_SSN"),
        ([("rows[0].k", "ssn"), ("rows[0].v", "078051120")], "US_SSN"),
        # Phones: numbers one after the other, WhatsApp links, plural context.
        ([("notes", "try one of these phones 052 5552606 074-7111234")], "PHONE"),
        ([("notes", "020 7946 0958 020 7946 0959")], "PHONE"),
        ([("notes", "Tel. 01 42 68 53 00 / 01 42 68 53 01")], "PHONE"),
        ([("notes", "090-1234-5678 090-1234-5679")], "PHONE"),
        ([("notes", "https://wa.me/447700900123")], "PHONE"),
        ([("notes", "wa.me/12125550123")], "PHONE"),
        ([("notes", "phones: 4258829090")], "PHONE"),
        ([("notes", "4258829090 (mobile)")], "PHONE"),
        ([("notes", "my phone number is 2125550123")], "PHONE"),
        ([("notes", "phone 02540-4119")], "PHONE"),
    ],
)
def test_second_review_forms_are_found(pairs: list[tuple[str, str]], detector: str) -> None:
    assert detector in found(*pairs)


@pytest.mark.parametrize(
    "text",
    [
        "zip 02540-4119",  # a ZIP+4 code
        "02540-4119",
        "the social media id 123456789 ok",
    ],
)
def test_second_review_clean_texts_pass(text: str) -> None:
    assert found(("notes", text)) == []


def test_zip_plus_four_codes_are_not_phones() -> None:
    rng = random.Random(7)
    codes = [f"{rng.randrange(100_000):05d}-{rng.randrange(10_000):04d}" for _ in range(500)]
    blocked = sum(bool(found(("address.zip", code))) for code in codes)
    assert blocked <= 5, blocked  # was 95% of those with a leading 0


def test_lists_of_figures_are_not_cut_into_phone_numbers() -> None:
    """Only a run made wholly of numbers with their trunk prefix is cut into numbers."""
    rng = random.Random(3)
    blocked = 0
    for _ in range(500):
        figures = " ".join(str(rng.randrange(1000)) for _ in range(rng.randint(6, 12)))
        blocked += "PHONE" in found(("notes", f"values: {figures}"))
    assert blocked <= 5, blocked


def test_android_user_agents_are_rarely_blocked() -> None:
    """Their "Mobile Safari" is no context word for the build number's digits."""
    rng = random.Random(11)
    blocked = 0
    for _ in range(300):
        day, n = rng.randrange(200101, 241231), rng.randrange(1, 99)
        build = f"{rng.choice('ABTU')}{rng.randrange(1, 4)}A.{day}.{n:03d}"
        ua = (
            f"Mozilla/5.0 (Linux; Android {rng.randrange(9, 15)}; SM-S{rng.randrange(900, 999)}B"
            f" Build/{build}; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0"
            f" Chrome/{rng.randrange(100, 131)}.0.{rng.randrange(1000, 6999)}.{rng.randrange(250)}"
            " Mobile Safari/537.36"
        )
        blocked += bool(found(("headers.user-agent", ua)))
    assert blocked <= 3, blocked  # was 76%


@pytest.mark.parametrize(
    "text", ["mobile 2125550123", "Mobile: 07700900123", "my mobile/cell 2125550123"]
)
def test_mobile_is_still_a_context_word(text: str) -> None:
    assert found(("notes", text)) == ["PHONE"]


BUFFER = json.dumps({"type": "Buffer", "data": list(b"4111 1111 1111 1111")})


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        ("card \\033[1;36m4111\\033[0m \\033[1;36m1111\\033[0m 1111 1111", "CREDIT_CARD"),
        ("card \\e[1m4111\\e[0m 1111 1111 1111", "CREDIT_CARD"),
        ("card ^[[1m4111^[[0m 1111 1111 1111", "CREDIT_CARD"),
        ("=?UTF-8?Q?john.doe=40example.com?=", "EMAIL"),  # one escape in an encoded word
        ("card: \u202e1111 1111 1111 1114\u202c", "CREDIT_CARD"),  # shown as 4111 …
        (BUFFER, "CREDIT_CARD"),  # Node's Buffer in JSON
    ],
)
def test_spelled_escapes_encoded_words_overrides_and_byte_arrays(text: str, detector: str) -> None:
    assert detector in found(("notes", text))


def test_byte_arrays_are_read_as_text_only_when_they_are() -> None:
    from zoneapp.dlp import joined_views

    assert "john.doe@example.com" in joined_views(list(b"john.doe@example.com"))
    rng = random.Random(5)
    noise = [[rng.randrange(256) for _ in range(16)] for _ in range(200)]
    assert sum(len(joined_views(v)) > 2 for v in noise) == 0  # only the two joined views


def test_lists_of_amounts_and_coordinates_are_not_cards() -> None:
    """Apart by spaces, figures with two or five-plus digits after a dot are figures;
    joined, one such list in three held a card by chance."""
    rng = random.Random(13)
    blocked = 0
    for _ in range(500):
        prices = " ".join(f"{rng.randrange(1, 999)}.{rng.randrange(100):02d}" for _ in range(6))
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        blocked += bool(
            found(("notes", f"prices: {prices}"), ("geo", f"POINT({lon:.5f} {lat:.5f})"))
        )
    assert blocked <= 5, blocked
    # A card's groups keep their forms: four digits a group, dots and spaces mixed.
    assert found(("notes", "4111.1111 1111.1111")) == ["CREDIT_CARD"]
    assert found(("notes", "12.50 4111 1111 1111 1111")) == ["CREDIT_CARD"]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("notes", "phone: 555-1234"),
        ("notes", "Tel 0800 1234"),
        ("contact.phone", "310-1234"),
        ("contact.phone", "0906 1234"),
    ],
)
def test_local_numbers_with_context(path: str, text: str) -> None:
    """Seven or eight digits in two groups: a local number, with a context word."""
    assert found((path, text)) == ["PHONE"]


@pytest.mark.parametrize("text", ["call 555-1234", "years 2024 2025", "order 1234-5678"])
def test_local_number_shapes_without_context_pass(text: str) -> None:
    assert found(("notes", text)) == []


def test_hyphen_joined_lists_of_small_numbers_are_not_phones() -> None:
    rng = random.Random(17)
    draws = ["-".join(str(rng.randint(1, 49)) for _ in range(6)) for _ in range(300)]
    assert sum("PHONE" in found(("notes", f"draw {d}")) for d in draws) <= 3  # was 79%


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        # A stray override earlier in the text hides nothing that needs normalizing.
        ("\u202e\ncard 4111\u00a01111\u00a01111\u00a01111", "CREDIT_CARD"),
        ("\u202e\nIBAN GB82\u00a0WEST\u00a01234\u00a05698\u00a07654\u00a032", "IBAN"),
        ("\u202e\njohn\uff20example.com", "EMAIL"),
        # Nor inside a decoded layer.
        ("%E2%80%AE%0Acard%204111%201111%201111%201111", "CREDIT_CARD"),
        (base64.b64encode("\u202e\ncard 4111 1111 1111 1111".encode()).decode(), "CREDIT_CARD"),
        # Brazil's mobile with its 9 apart, and Portuguese context.
        ("(11) 9 8765-4321", "PHONE"),
        ("celular 21 9 9876 5432", "PHONE"),
        ("contato: 2198765432", "PHONE"),
    ],
)
def test_third_review_forms_are_found(text: str, detector: str) -> None:
    assert detector in found(("notes", text))


@pytest.mark.parametrize("text", ["=?\u00e9?q?a?=", "Subject: =?\u00fc?Q?Hallo?="])
def test_an_encoded_word_with_an_unknown_charset_is_left_as_written(text: str) -> None:
    assert found(("notes", text)) == []


def test_encoded_words_that_never_close_are_not_decoded() -> None:
    """The email package's search of a whole text is quadratic in such openers (200 KB
    took 30 s); only complete, bounded words reach it."""
    from zoneapp.dlp.views import _mime_words

    assert _mime_words("=?a?q? " * 30_000) is None
    assert _mime_words("x =?utf-8?q?a=40b.com?= y") == "x a@b.com y"


@pytest.mark.parametrize(
    "text",
    [
        "Please contact me about order 48213377",
        "contact me re ticket #4821337",
        "Mobile app crash, case 90817263",
        "tel support: invoice no. 20261187",
    ],
)
def test_a_number_named_an_id_is_no_phone_for_a_context_word_elsewhere(text: str) -> None:
    assert found(("notes", text)) == []


@pytest.mark.parametrize(
    "text",
    ["call me about order 123 at my mobile 07700900123", "contact: 4258829090, order 48213377"],
)
def test_the_phone_beside_a_named_id_is_still_found(text: str) -> None:
    assert found(("notes", text)) == ["PHONE"]


def test_log_lines_with_milliseconds_and_pids_are_not_phones_or_cards() -> None:
    """``2025-06-02 19:31:20.307 89985 18158``: was 90% PHONE (the seconds, their
    fraction and the pid read as one national number)."""
    rng = random.Random(19)
    blocked = 0
    for _ in range(500):
        line = (
            f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randrange(24):02d}:"
            f"{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}"
            f" {rng.randrange(1000, 99999)} {rng.randrange(1000, 99999)} I worker: done"
        )
        blocked += bool(found(("log", line)))
    assert blocked <= 5, blocked  # also 6% CREDIT_CARD (seconds, pid and tid joined)
    assert found(("log", "mobile 10:30:15.123 07700 900123")) == ["PHONE"]
    assert found(("log", "at 10:00:00.5 4111 1111 1111 1111")) == ["CREDIT_CARD"]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        # A number straight after a label's ":" is no clock time's seconds.
        ("notes", "電話:03-1234-5678"),
        ("notes", "Bureau:01 42 68 53 00"),
        ("notes", "Rufnummer:06 12 34 56 78"),
        ("notes", "tel:06.12.34.56.78"),
        # After a clock time, the minutes are cut off, not the number.
        ("notes", "Meeting at 10:30 212-555-0123"),
        ("notes", "Call me at 9:45 (212) 555-0123"),
        ("notes", "at 14:30 01 23 45 67 89"),
        # "mobile/" is still a context word, and "caller id" no id word.
        ("notes", "mobile/home: 0612345678"),
        ("/user/mobile/number", "0612345678"),
        ("notes", "caller id: 0612345678 (mobile)"),
    ],
)
def test_final_review_phones_are_found(path: str, text: str) -> None:
    assert found((path, text)) == ["PHONE"]


@pytest.mark.parametrize("text", ["at 14:30 0612345678 please", "at 14:30 810 12 34 56"])
def test_a_run_after_an_hour_is_still_tried_whole(text: str) -> None:
    """The minutes cut off is one reading; the whole run as written is the other."""
    assert found(("notes", text)) == ["PHONE"]


@pytest.mark.parametrize(
    "text",
    [
        "jane.doe [at] example [dot] com",
        "jane.doe(at)example.com",
        "JANE {AT} EXAMPLE {DOT} ORG",
        "jane <at> example <dot> co <dot> uk",
        "john.doe @ example.com",
        "john.doe @example.co.uk",
        "john.doe@ example.com",
    ],
)
def test_addresses_written_to_fool_scrapers(text: str) -> None:
    assert found(("notes", text)) == ["EMAIL"]


@pytest.mark.parametrize(
    "text",
    [
        "meet (at) the park",
        "see [at] 5pm. Then",
        "<a href=x>at</a>",
        "meet @ home. Then",
        "see you @ 5pm.ok",
        "I am @ home.Call me",
        "price 5 @ 12.50 each",
    ],
)
def test_the_word_at_in_brackets_is_no_address(text: str) -> None:
    assert found(("notes", text)) == []
