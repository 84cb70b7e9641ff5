"""A demo feed of realistic restricted-zone records for the example e-commerce policy.

``python -m zoneapp.stack.demo --broker kafka://127.0.0.1:9092 --rate 50 [--count N]``

Records follow ``deploy/policies/ecommerce.yaml``: card payments into
``restricted.payments`` and user profiles into ``restricted.user-pii``. All card
numbers are issuer test numbers or Luhn-valid test-range numbers, IBANs carry correct
mod-97 check digits, SSNs use valid areas, phones are the fictional 555-01xx / Ofcom
drama ranges and e-mails use reserved example domains: realistic enough for the DLP
and the transforms, but nobody's data.

Mixed in on purpose, so every path of the sanitizer shows up in a demo:

* about 5% of payments carry PII in ``notes`` (a card number, SSN or phone the
  customer typed), which the DLP scan must block;
* about 2% of payments carry an unclassified field (``device_fingerprint``...),
  which the boundary must suppress;
* about 0.5% of all records are broken (invalid JSON or not UTF-8) and must land in
  the quarantine topic.

The generators are pure functions of a ``random.Random`` so tests and the benchmark
can reproduce a feed exactly from a seed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import string
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from zoneapp.dlp.credit_card import luhn_check_digit, luhn_ok
from zoneapp.formats import utc_iso
from zoneapp.settings import bootstrap_servers

__all__ = [
    "PAYMENTS_TOPIC",
    "TENANTS",
    "USERS_TOPIC",
    "Record",
    "iban",
    "luhn_check_digit",
    "luhn_valid",
    "make_broken",
    "make_payment",
    "make_record",
    "make_user",
    "produce_demo",
]

PAYMENTS_TOPIC = "restricted.payments"
USERS_TOPIC = "restricted.user-pii"
TENANTS = ("acme-retail", "globex-shop", "initech-store")

#: (key, value, headers) as produced; value is bytes for broken records.
Record = tuple[bytes, dict[str, Any], list[tuple[str, bytes]]]

P_NOTES_PII = 0.05
P_UNCLASSIFIED = 0.02
P_BROKEN = 0.005
P_USER = 0.2  # one user-profile update for every four payments
P_EMAIL_HEADER = 0.3

# Issuer test numbers published by card networks and payment processors.
TEST_CARDS = (
    "4111111111111111",
    "4012888888881881",
    "4242424242424242",
    "4000056655665556",
    "5555555555554444",
    "5105105105105100",
    "5200828282828210",
    "2223003122003222",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "6011000990139424",
    "3530111333300000",
    "3566002020360505",
)

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sofia", "Mateo", "Aisha", "Yusuf",
    "Mei", "Hiroshi", "Priya", "Arjun", "Chloé", "Lukas", "Ingrid", "Sven", "Fatima", "Omar",
    "Zoe", "Ethan", "Isabella", "Lucas", "Hannah", "Jonas", "Elena", "Marco", "Nia", "Kwame",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Garcia", "Martinez", "Müller", "Schmidt", "Dubois",
    "Rossi", "Bianchi", "Nguyen", "Tanaka", "Sato", "Patel", "Sharma", "Kowalski", "Novak",
    "Andersson", "Johansson", "O'Brien", "Murphy", "de Vries", "Jansen", "Okafor", "Mensah",
    "García López", "Fernández", "Silva", "Costa", "Cohen",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
STREETS = (
    "Maple Street", "Oak Avenue", "Hauptstraße", "Rue de la Paix", "Calle Mayor",
    "Keizersgracht", "High Street", "Elm Road", "Via Roma", "Birch Lane",
)  # fmt: skip
INTERESTS = (
    "running", "cooking", "gaming", "travel", "photography", "gardening", "cycling",
    "books", "music", "fashion", "electronics", "home-decor", "outdoors", "pets",
)  # fmt: skip
LOYALTY_TIERS = ("none", "bronze", "silver", "gold", "platinum")
DIAGNOSIS_CODES = ("E11.9", "J45.909", "I10", "M54.5", "F41.1", "K21.9")

MERCHANTS = (
    ("m_books01", "Paper Lantern Books", "books"),
    ("m_elec07", "Voltage Electronics", "electronics"),
    ("m_fash03", "Linen & Loom", "apparel"),
    ("m_groc12", "Green Basket Grocers", "grocery"),
    ("m_home05", "Nest Home Goods", "home"),
    ("m_sprt09", "Summit Outdoor Supply", "sporting-goods"),
    ("m_toys02", "Tiny Giants Toys", "toys"),
    ("m_beau04", "Glow Apothecary", "beauty"),
)
SKU_PREFIX = {
    "books": "BK", "electronics": "EL", "apparel": "AP", "grocery": "GR",
    "home": "HM", "sporting-goods": "SP", "toys": "TY", "beauty": "BT",
}  # fmt: skip

# Countries: (code, currency, cities with their postal-code shape, phone style)
COUNTRIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "US": ("USD", ("Springfield", "Portland", "Austin", "Denver", "Columbus"), "us"),
    "GB": ("GBP", ("London", "Leeds", "Bristol", "Glasgow"), "gb"),
    "DE": ("EUR", ("Berlin", "Hamburg", "München", "Köln"), "de"),
    "FR": ("EUR", ("Paris", "Lyon", "Marseille", "Lille"), "fr"),
    "NL": ("EUR", ("Amsterdam", "Utrecht", "Rotterdam"), "nl"),
    "ES": ("EUR", ("Madrid", "Sevilla", "Valencia"), "es"),
}
COUNTRY_WEIGHTS = (("US", 40), ("GB", 15), ("DE", 15), ("FR", 10), ("NL", 10), ("ES", 10))

CLEAN_NOTES = (
    "Please leave the parcel at the front desk.",
    "Gift wrap please, it's a birthday present!",
    "Deliver after six in the evening if possible.",
    "Ring the bell twice, the first one is broken.",
    "No rush on this order.",
    "Please use recyclable packaging.",
    "Leave with the neighbour if nobody is home.",
)
UNCLASSIFIED_FIELDS = ("device_fingerprint", "risk_score", "ip_address", "user_agent")


# -- check digits ----------------------------------------------------------------------


def luhn_valid(number: str) -> bool:
    """Whether a card number, in any grouping, passes the Luhn check (the DLP's own)."""
    digits = "".join(c for c in number if c.isdigit())
    return len(digits) >= 2 and luhn_ok(digits)


def _mod97(text: str) -> int:
    """ISO 7064 mod 97-10 of an alphanumeric string (letters count as 10..35)."""
    return int("".join(str(int(c, 36)) for c in text)) % 97


def iban(country: str, bban: str) -> str:
    """A complete IBAN with the correct check digits for ``bban`` (compact form)."""
    check = 98 - _mod97(bban + country + "00")
    return f"{country}{check:02d}{bban}"


def _es_ccc_digit(digits: str) -> str:
    weights = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)
    value = 11 - sum(w * int(d) for w, d in zip(weights[-len(digits) :], digits, strict=True)) % 11
    return {10: "1", 11: "0"}.get(value, str(value))


def _fr_rib_key(bank: str, branch: str, account: str) -> str:
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97:02d}"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def make_iban(rng: random.Random, country: str) -> str | None:
    """A realistic IBAN (national check digits included); None outside IBAN countries."""
    if country == "DE":
        bank = rng.choice(("37040044", "50010517", "10010010", "20041133", "70150000"))
        return iban("DE", bank + _digits(rng, 10))
    if country == "GB":
        bank, sort = rng.choice((("NWBK", "601613"), ("BARC", "200000"), ("HBUK", "400515")))
        return iban("GB", bank + sort + _digits(rng, 8))
    if country == "NL":
        return iban("NL", rng.choice(("ABNA", "INGB", "RABO", "TRIO")) + _digits(rng, 10))
    if country == "FR":
        bank, branch = rng.choice((("20041", "01005"), ("30004", "00003"), ("30003", "01234")))
        account = _digits(rng, 11)
        return iban("FR", bank + branch + account + _fr_rib_key(bank, branch, account))
    if country == "ES":
        bank, branch = rng.choice((("2100", "0418"), ("0049", "1500"), ("0182", "2370")))
        account = _digits(rng, 10)
        control = _es_ccc_digit(bank + branch) + _es_ccc_digit(account)
        return iban("ES", bank + branch + control + account)
    return None


# -- people ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """One customer, shared by the payment and the user-profile feeds."""

    user_id: str
    tenant_id: str
    first: str
    last: str
    email: str
    phone: str
    ssn: str | None  # US customers only
    date_of_birth: date
    street: str
    city: str
    zip: str
    country: str
    signup_date: date
    loyalty_tier: str
    interests: tuple[str, ...]

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"


def make_ssn(rng: random.Random) -> str:
    """A US SSN with a valid area (001-899, not 666), group 01-99 and serial 0001-9999."""
    area = rng.randint(1, 899)
    while area == 666:
        area = rng.randint(1, 899)
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def make_phone(rng: random.Random, style: str) -> str:
    """Fictional-range numbers (NANP 555-0100..0199, Ofcom drama numbers...)."""
    if style == "us":
        area = rng.choice(("212", "312", "415", "503", "617", "720"))
        line = f"01{rng.randint(0, 99):02d}"
        return rng.choice((f"+1 {area}-555-{line}", f"({area}) 555-{line}", f"+1{area}555{line}"))
    if style == "gb":
        return f"+44 20 7946 0{rng.randint(0, 999):03d}"
    if style == "de":
        return f"+49 30 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    if style == "fr":
        return "+33 1 " + " ".join(f"{rng.randint(10, 99)}" for _ in range(4))
    if style == "nl":
        return f"+31 20 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    return f"+34 91 {rng.randint(100, 999)} {rng.randint(10, 99)} {rng.randint(10, 99)}"


def make_zip(rng: random.Random, country: str) -> str:
    if country == "US":
        return f"{rng.randint(1001, 99950):05d}"
    if country == "GB":
        outward = rng.choice(("SW1A", "EC1A", "M1", "LS1", "BS1", "G2"))
        unit = "".join(rng.choice("ABDEFGHJLNPQRSTUWXYZ") for _ in range(2))
        return f"{outward} {rng.randint(1, 9)}{unit}"
    if country == "NL":
        return f"{rng.randint(1000, 9999)} {''.join(rng.choices(string.ascii_uppercase, k=2))}"
    return f"{rng.randint(1000, 99999):05d}"


def _slug(text: str) -> str:
    plain = text.lower().replace("ü", "u").replace("é", "e").replace("ó", "o").replace("'", "")
    return "".join(c for c in plain if c.isalnum())


def _id(rng: random.Random, prefix: str, n: int = 12) -> str:
    # Letters and digits mixed, never a long digit run a PII detector could mistake for a number.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


def _weighted_country(rng: random.Random) -> str:
    codes = [code for code, _ in COUNTRY_WEIGHTS]
    weights = [weight for _, weight in COUNTRY_WEIGHTS]
    return rng.choices(codes, weights=weights)[0]


def make_person(rng: random.Random) -> Person:
    country = _weighted_country(rng)
    _, cities, phone_style = COUNTRIES[country]
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = rng.choice(
        (
            f"{_slug(first)}.{_slug(last)}",
            f"{_slug(first)[0]}{_slug(last)}",
            f"{_slug(first)}{rng.randint(1, 99)}",
        )
    )
    dob = date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55))
    return Person(
        user_id=_id(rng, "u_"),
        tenant_id=rng.choice(TENANTS),
        first=first,
        last=last,
        email=f"{local}@{rng.choice(EMAIL_DOMAINS)}",
        phone=make_phone(rng, phone_style),
        ssn=make_ssn(rng) if country == "US" else None,
        date_of_birth=dob,
        street=f"{rng.randint(1, 240)} {rng.choice(STREETS)}",
        city=rng.choice(cities),
        zip=make_zip(rng, country),
        country=country,
        signup_date=date(2019, 1, 1) + timedelta(days=rng.randint(0, 2500)),
        loyalty_tier=rng.choice(LOYALTY_TIERS),
        interests=tuple(rng.sample(INTERESTS, rng.randint(0, 4))),
    )


@cache
def customers() -> tuple[Person, ...]:
    """A fixed pool of customers, so repeated e-mails and cards show deterministic tokens."""
    rng = random.Random(20261122)
    return tuple(make_person(rng) for _ in range(500))


# -- records ---------------------------------------------------------------------------


def make_card(rng: random.Random) -> str:
    """A Luhn-valid test card number: an issuer test number or a generated test-range Visa/MC."""
    if rng.random() < 0.6:
        return rng.choice(TEST_CARDS)
    prefix = rng.choice(("4111", "4000", "5555", "5105", "2223"))
    partial = prefix + _digits(rng, 11)
    return partial + luhn_check_digit(partial)


def format_card(rng: random.Random, number: str) -> str:
    """As typed: mostly compact, sometimes grouped with spaces or dashes (Amex 4-6-5)."""
    style = rng.random()
    if style < 0.7:
        return number
    sep = " " if style < 0.9 else "-"
    if len(number) == 15:
        groups = [number[:4], number[4:10], number[10:]]
    else:
        groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return sep.join(groups)


def _headers(rng: random.Random, email: str | None = None) -> list[tuple[str, bytes]]:
    headers = [
        ("content-type", b"application/json"),
        ("x-request-id", str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()),
    ]
    if email is not None:
        headers.append(("x-customer-email", email.encode()))
    return headers


def _timestamp(rng: random.Random) -> str:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    moment = base + timedelta(seconds=rng.randint(0, 30 * 86400), milliseconds=rng.randint(0, 999))
    return utc_iso(moment)


def _pii_note(rng: random.Random, person: Person, card: str) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice(
            (
                f"Card didn't go through, try {format_card(rng, card)} instead",
                f"please charge my other card {format_card(rng, make_card(rng))}",
            )
        )
    if kind == 1:
        return f"For the credit check my SSN is {person.ssn or make_ssn(rng)}"
    return rng.choice(
        (
            f"Call me at {person.phone} before delivery",
            f"Courier: text {make_phone(rng, 'us')} when outside",
        )
    )


def make_payment(rng: random.Random) -> Record:
    """One card payment: (JSON-encoded key, value, headers)."""
    person = rng.choice(customers())
    merchant_id, merchant_name, category = rng.choice(MERCHANTS)
    card = make_card(rng)
    currency = COUNTRIES[person.country][0]
    items: list[dict[str, Any]] = []
    amount = 0.0
    for _ in range(rng.choices((1, 2, 3, 4), weights=(50, 30, 15, 5))[0]):
        quantity = rng.choices((1, 2, 3), weights=(80, 15, 5))[0]
        price = round(rng.uniform(2.5, 250.0), 2)
        letters = "".join(rng.choices(string.ascii_uppercase, k=2))
        sku = f"{SKU_PREFIX[category]}-{letters}{rng.randint(100, 999)}"
        items.append({"sku": sku, "quantity": quantity, "price": price})
        amount += quantity * price
    amount = round(amount, 2)
    payment_id = _id(rng, "pay_", 16)
    value: dict[str, Any] = {
        "tenant_id": person.tenant_id,
        "payment_id": payment_id,
        "created_at": _timestamp(rng),
        "card_number": format_card(rng, card),
        "card_last4": card[-4:],
        "cvv": _digits(rng, 4 if len(card) == 15 else 3),
        "card_expiry": f"{rng.randint(1, 12):02d}/{rng.randint(27, 31)}",
        "customer": {
            "name": person.full_name,
            "date_of_birth": person.date_of_birth.isoformat(),
            "zip": person.zip,
            "email": person.email,
            "phone": person.phone,
        },
        "billing": {"country": person.country},
        "amount": amount,
        "currency": currency,
        "merchant": {"id": merchant_id, "name": merchant_name, "category": category},
        "items": items,
    }
    if person.ssn is not None and rng.random() < 0.5:
        value["ssn"] = person.ssn  # store-card applications carry the SSN
    account = make_iban(rng, person.country)
    if account is not None:
        value["billing"]["iban"] = account
    roll = rng.random()
    if roll < P_NOTES_PII:
        value["notes"] = _pii_note(rng, person, card)
    elif roll < 0.35:
        value["notes"] = rng.choice(CLEAN_NOTES)
    if rng.random() < P_UNCLASSIFIED:
        field = rng.choice(UNCLASSIFIED_FIELDS)
        value[field] = {
            "device_fingerprint": f"{rng.getrandbits(128):032x}",
            "risk_score": round(rng.random(), 3),
            "ip_address": f"203.0.113.{rng.randint(1, 254)}",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
        }[field]
    email = person.email if rng.random() < P_EMAIL_HEADER else None
    return json.dumps(payment_id).encode(), value, _headers(rng, email)


def make_user(rng: random.Random) -> Record:
    """One user-profile update for ``restricted.user-pii``: (JSON-encoded key, value, headers)."""
    person = rng.choice(customers())
    value: dict[str, Any] = {
        "tenant_id": person.tenant_id,
        "user_id": person.user_id,
        "full_name": person.full_name,
        "email": person.email,
        "phone": person.phone,
        "date_of_birth": person.date_of_birth.isoformat(),
        "address": {
            "street": person.street,
            "city": person.city,
            "zip": person.zip,
            "country": person.country,
        },
        "signup_date": person.signup_date.isoformat(),
        "loyalty_tier": person.loyalty_tier,
        "interests": list(person.interests),
    }
    if person.ssn is not None:
        value["ssn"] = person.ssn
    if rng.random() < 0.1:
        value["diagnosis_codes"] = rng.sample(DIAGNOSIS_CODES, rng.randint(1, 2))
    return json.dumps(person.user_id).encode(), value, _headers(rng)


def make_broken(rng: random.Random, good: bytes) -> bytes:
    """A damaged copy of a serialized record: truncated JSON or bytes that are not UTF-8."""
    if rng.random() < 0.5:
        return good[: rng.randint(1, max(1, len(good) - 1))]
    cut = rng.randint(0, len(good))
    return good[:cut] + b"\xff\xfe\xc3\x28" + good[cut:]


def make_record(rng: random.Random) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
    """The next record of the feed: (topic, key, serialized value, headers)."""
    if rng.random() < P_USER:
        topic, (key, value, headers) = USERS_TOPIC, make_user(rng)
    else:
        topic, (key, value, headers) = PAYMENTS_TOPIC, make_payment(rng)
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    if rng.random() < P_BROKEN:
        body = make_broken(rng, body)
    return topic, key, body, headers


# -- producing -------------------------------------------------------------------------


async def produce_demo(
    broker: str,
    *,
    rate: float,
    count: int | None,
    seed: int,
    stop: asyncio.Event | None = None,
) -> int:
    """Produce the demo feed at ``rate`` records/s (<= 0: unthrottled); returns the count sent.

    Runs until ``count`` records were sent or ``stop`` is set; either way, what is in
    flight is delivered before returning. Cancellation also stops the producer cleanly.
    """
    from aiokafka import AIOKafkaProducer

    rng = random.Random(seed)
    stop = stop or asyncio.Event()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker),
        acks=1,
        linger_ms=10,
        max_batch_size=256 * 1024,
        client_id="zoneapp-demo",
    )
    await producer.start()
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    start = time.monotonic()
    try:
        while (count is None or sent < count) and not stop.is_set():
            if rate > 0:
                # Pace against the start time so rounding never accumulates; only
                # wait when ahead by more than one linger interval.
                ahead = start + sent / rate - time.monotonic()
                if ahead > 0.01:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), ahead)
                    continue
            topic, key, body, headers = make_record(rng)
            pending.append(await producer.send(topic, body, key=key, headers=headers))
            sent += 1
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m zoneapp.stack.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--broker", required=True, help="kafka://host:port or host:port")
    parser.add_argument(
        "--rate", type=float, default=50.0, help="records per second (0: unthrottled)"
    )
    parser.add_argument("--count", type=int, default=None, help="stop after N records")
    parser.add_argument(
        "--seed", type=int, default=1, help="random seed (the feed is reproducible)"
    )
    args = parser.parse_args(argv)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await produce_demo(
            args.broker, rate=args.rate, count=args.count, seed=args.seed, stop=stop
        )

    began = time.monotonic()
    sent = asyncio.run(run())
    elapsed = max(time.monotonic() - began, 1e-9)
    print(f"sent {sent} records in {elapsed:.1f}s ({sent / elapsed:.0f}/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
