"""Realistic restricted records for the pipeline tests."""

from __future__ import annotations

from typing import Any

import orjson

from zoneapp.sanitizer import RawRecord

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
