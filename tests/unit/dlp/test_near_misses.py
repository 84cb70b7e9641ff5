"""Precision and recall on generated data: near-misses pass, planted values never do.

The near-miss table holds the number-shaped things real records carry (barcodes,
ISBNs, tracking numbers, UUIDs, timestamps, addresses, versions, amounts) and
values that fail a detector's checksum or range rules.  At most 1% may be blocked.
Property tests plant real values, written with random separators and neighbours,
into random text; every one must be found.
"""

from __future__ import annotations

import random
import string
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoneapp.dlp import BUILTIN_DETECTORS, build_scanner
from zoneapp.dlp.credit_card import _gs1_ok, luhn_ok
from zoneapp.dlp.iban import iban_ok

ALL = build_scanner(list(BUILTIN_DETECTORS), [])
RNG = random.Random(20261201)


def digits(n: int) -> str:
    return "".join(RNG.choice(string.digits) for _ in range(n))


def gs1(body: str) -> str:
    return next(body + d for d in string.digits if _gs1_ok(body + d))


def bad_luhn(prefix: str, length: int) -> str:
    while True:
        n = prefix + digits(length - len(prefix))
        if not luhn_ok(n):
            return n


def isbn13() -> str:
    return gs1(RNG.choice(["978", "979"]) + digits(9))


def bad_iban() -> str:
    good = "DE89370400440532013000"
    while True:
        i = RNG.randrange(4, len(good))
        n = good[:i] + RNG.choice(string.digits) + good[i + 1 :]
        if not iban_ok(n):
            return n


def amount() -> str:
    value = f"{RNG.randrange(1000, 10**9):,}"
    return RNG.choice([value + ".00", value.replace(",", ".") + ",50", value.replace(",", " ")])


NEAR_MISS_KINDS = {
    "bad-luhn card": lambda: bad_luhn(RNG.choice(["4", "51", "37", "6011"]), 16),
    "EAN-13": lambda: gs1(RNG.choice(["40", "50", "54", "76", "87"]) + digits(10)),
    "GTIN-14": lambda: gs1(RNG.choice("0123456789") + RNG.choice(["40", "36", "50"]) + digits(10)),
    "ISBN-13": isbn13,
    "ISBN-13 hyphenated": lambda: (lambda n: f"{n[:3]}-{n[3]}-{n[4:8]}-{n[8:12]}-{n[12]}")(
        isbn13()
    ),
    "UPS tracking": lambda: (
        "1Z"
        + "".join(RNG.choice(string.ascii_uppercase + string.digits) for _ in range(6))
        + digits(10)
    ),
    "UUID": lambda: str(uuid.UUID(int=RNG.getrandbits(128))),
    "epoch ms": lambda: str(RNG.randrange(1_500_000_000_000, 1_900_000_000_000)),
    "epoch s": lambda: str(RNG.randrange(1_500_000_000, 1_900_000_000)),
    "IPv4": lambda: ".".join(str(RNG.randrange(256)) for _ in range(4)),
    "version": lambda: ".".join(str(RNG.randrange(30)) for _ in range(RNG.randint(2, 4))),
    "invalid SSN": lambda: (
        RNG.choice(["000", "666", "9" + digits(2)]) + f"-{digits(2)}-{digits(4)}"
    ),
    "bad-checksum IBAN": bad_iban,
    "amount": amount,
    "date-time": lambda: (
        f"20{digits(2)}-{RNG.randint(1, 12):02d}-{RNG.randint(1, 28):02d} "
        f"{RNG.randint(0, 23):02d}:{RNG.randint(0, 59):02d}"
    ),
    "order id": lambda: f"ORD-{digits(8)}",
}


def test_near_miss_false_block_rate_at_most_one_percent() -> None:
    blocked: dict[str, int] = {}
    total = 0
    for kind, make in NEAR_MISS_KINDS.items():
        for _ in range(150):
            total += 1
            if ALL.scan([("notes", f"ref {make()} ok")]):
                blocked[kind] = blocked.get(kind, 0) + 1
    rate = sum(blocked.values()) / total
    assert rate <= 0.01, (rate, blocked)


PLANTED = [
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "30569309025904",
    "122000000000003",
    "6200000000000005",
    "078-05-1123",
    "219-45-6789",
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "jane.doe@example.com",
    "+1 415 555 2671",
    "+44 20 7946 0958",
]
SEPARATORS = [" ", "-", ".", "/", "_", "\u00a0", "\u2013", " - "]
NEIGHBOURS = ["", " ", "x", "REF", "_", ":", "(", "é", "\u200b", "\n"]
WORDS = st.text(alphabet=string.ascii_letters + " ,;:!?", max_size=40)


def regroup(value: str, sep: str, size: int) -> str:
    if "@" in value or value.startswith("+"):
        return value  # addresses and phone numbers keep their own layout
    if value.count("-") == 2 and len(value) == 11:  # an SSN keeps 3-2-4
        return value.replace("-", sep)
    compact = value.replace(" ", "").replace("-", "")
    return sep.join(compact[i : i + size] for i in range(0, len(compact), size))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.sampled_from(PLANTED),
    sep=st.sampled_from(SEPARATORS),
    size=st.sampled_from([4, 5, 6, 19, 34]),
    left=st.sampled_from(NEIGHBOURS),
    right=st.sampled_from(NEIGHBOURS),
    before=WORDS,
    after=WORDS,
)
def test_planted_values_are_always_found(
    value: str, sep: str, size: int, left: str, right: str, before: str, after: str
) -> None:
    text = f"{before} {left}{regroup(value, sep, size)}{right} {after}"
    assert ALL.scan([("notes", text)]), text
