"""Realistic restricted records for the pipeline tests."""

from __future__ import annotations

from typing import Any

import orjson

from zoneapp.core.sanitizer import RawRecord
from zoneapp.dlp.credit_card import luhn_ok as luhn_valid

CARD = "4111 1111 1111 1111"
SSN = "219-45-6789"
IBAN = "DE89370400440532013000"
EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 2671"
NAME = "Jane Doe"

SENSITIVE = [
    CARD,
    CARD.replace(" ", ""),
    SSN,
    IBAN,
    EMAIL,
    PHONE,
    NAME,
    "415 555 2671",
    "1987-03-14",
]


def payment(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "tenant_id": "acme",
        "payment_id": "pay_000123",
        "created_at": "2026-11-22T10:00:00Z",
        "card_number": CARD,
        "card_last4": "1111",
        "cvv": "123",
        "card_expiry": "12/29",
        "ssn": SSN,
        "customer": {
            "name": NAME,
            "date_of_birth": "1987-03-14",
            "zip": "94107",
            "email": EMAIL,
            "phone": PHONE,
        },
        "billing": {"iban": IBAN, "country": "DE"},
        "amount": 129.95,
        "currency": "EUR",
        "merchant": {"id": "m-42", "name": "Blue Bottle", "category": "coffee"},
        "items": [
            {"sku": "A-1", "quantity": 2, "price": 4.5},
            {"sku": "B-2", "quantity": 1, "price": 120.95},
        ],
        "notes": "leave at the door",
    }
    record.update(overrides)
    return record


def raw(
    value: Any,
    *,
    key: bytes | None = b'"pay_000123"',
    headers: list[tuple[str, bytes]] | None = None,
    topic: str = "restricted.payments",
    offset: int = 7,
) -> RawRecord:
    data = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    return RawRecord(
        topic=topic,
        partition=1,
        offset=offset,
        key=key,
        value=data,
        headers=headers if headers is not None else [("content-type", b"application/json")],
        timestamp_ms=1_763_800_000_000,
    )


def colliding_cards(tokenize: Any, ctx: Any) -> tuple[str, str, str]:
    """Two Luhn-valid 12-digit cards with the same ``format: card`` token under this key:
    (first, second, token). ``tokenize`` is a TokenizeTransform, ``ctx`` its RecordContext.

    A 12-digit card token keeps the last four digits and draws the other 8 from the MAC:
    among cards ending in the same four digits, a collision is expected after about
    12,000 cards (birthday bound on 10^8), so the search takes well under a second.
    """
    seen: dict[str, str] = {}
    for n in range(400_000):
        head = f"4{n:06d}"
        card = next(c for d in "0123456789" if luhn_valid(c := f"{head}{d}1111"))
        token = tokenize.apply(card, ctx)
        if token in seen:
            return seen[token], card, token
        seen[token] = card
        ctx.vault_entries.clear()
    raise AssertionError("no collision among 400,000 cards: tokens are not 8-digit bodies")
