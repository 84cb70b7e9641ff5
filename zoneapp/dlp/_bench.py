"""Micro-benchmark of the DLP scanner on a realistic sanitized record.

Run with ``python -m zoneapp.dlp._bench``.  The scanner is on the hot path (every
output record), so this prints microseconds per record for a record with no hit
(the common case) and one with a card number in a free-text field.
"""

from __future__ import annotations

import base64
import json
import random
import timeit
from collections.abc import Iterator
from typing import Any

from zoneapp.dlp.scanner import BUILTIN_DETECTORS, Scanner, build_scanner

_RNG = random.Random(1)  # fixed seed: the same record on every run


def _b64(size: int) -> str:
    return base64.urlsafe_b64encode(_RNG.randbytes(size)).rstrip(b"=").decode()


def sanitized_record() -> dict[str, Any]:
    """A ~800-byte record as the guard emits it: tokens, masks, ciphertexts, hashes."""
    return {
        "event_id": "evt_01JD3K8M2Q7X9V4N6B5C",
        "ts": 1763788800000,
        "created_at": "2026-11-22T10:30:00Z",
        "customer": {
            "id": "tok_8fQ2xLm9Rk3vTz1w",
            "name": "h1." + _b64(24),
            "email": "zenc1." + _b64(36),
            "phone": "zenc1." + _b64(24),
            "country": "DE",
            "segment": "retail",
        },
        "card": {
            "masked": "****-****-****-1881",
            "token": "tok_c9Xk2P0qLm7Rz4Tw",
            "exp": "12/29",
            "brand": "VISA",
        },
        "items": [
            {"sku": "SKU-10442", "qty": 2, "price": 1234.56, "merchant": "Blue Bottle Coffee"},
            {"sku": "SKU-20017", "qty": 1, "price": 89.9, "merchant": "Acme Hardware GmbH"},
        ],
        "amount": 2558.92,
        "currency": "EUR",
        "iban": "zenc1." + _b64(32),
        "ssn_last4": "***-**-6789",
        "ip": "h1." + _b64(24),
        "note": "Delivered 2026-11-23 at 14:05, signed by recipient",
    }


def fields(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) pairs of a JSON value; numbers as their decimal string."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from fields(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from fields(item, f"{path}[{i}]")
    elif value is not None:
        yield path, str(value)


def _per_record_us(scanner: Scanner, items: list[tuple[str, str]]) -> float:
    number = 20_000
    best = min(timeit.repeat(lambda: scanner.scan(items), number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    scanner = build_scanner(list(BUILTIN_DETECTORS), [])
    record = sanitized_record()
    size = len(json.dumps(record))
    clean = list(fields(record))
    record["note"] = "call me, card 4111 1111 1111 1111 exp 12/29"
    leaky = list(fields(record))
    assert not scanner.scan(clean), "benchmark record must be clean"
    assert scanner.scan(leaky), "benchmark record must hit"

    print(f"record: {size} bytes JSON, {len(clean)} fields, {len(scanner.detectors)} detectors")
    print(f"no hit:  {_per_record_us(scanner, clean):6.1f} us/record")
    print(f"one hit: {_per_record_us(scanner, leaky):6.1f} us/record")
    custom = build_scanner(
        list(BUILTIN_DETECTORS),
        [("EMPLOYEE_ID", r"\bEMP-[0-9]{6}\b"), ("PROJECT", r"(?i:project[ -]?falcon)")],
    )
    print(f"no hit, +2 custom: {_per_record_us(custom, clean):6.1f} us/record")


if __name__ == "__main__":
    main()
