"""Every evasion form from the containment review, through the real worker on the real stack.

Each record keeps a payment's free-text ``notes`` (kept at confidential by the shipped
ecommerce policy) or an array of short strings, holding one planted value written
the way careless people and attackers write it.  Every one must be quarantined in
the restricted zone with a value-free violation naming the right detector; clean
near-misses in the same run must be forwarded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from zoneapp.stack import EmbeddedStack

from .conftest import RunWorker
from .test_pipeline import header, js, payment, produce, read_all

pytestmark = pytest.mark.integration

CARD = "4111111111111111"
FW = str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")
AR = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")


def spaced(sep: str, value: str = CARD) -> str:
    return sep.join(value[i : i + 4] for i in range(0, len(value), 4))


# (label, notes value, detector)
EVASIONS: list[tuple[str, Any, str]] = [
    ("dots", "4111.1111.1111.1111", "CREDIT_CARD"),
    ("slashes", "4111/1111/1111/1111", "CREDIT_CARD"),
    ("nbsp", spaced("\u00a0"), "CREDIT_CARD"),
    ("zero-width", "\u200b".join(CARD), "CREDIT_CARD"),
    ("soft-hyphen", "\u00ad".join(CARD), "CREDIT_CARD"),
    ("full-width", CARD.translate(FW), "CREDIT_CARD"),
    ("arabic-indic", CARD.translate(AR), "CREDIT_CARD"),
    ("glued", f"REF{CARD}X", "CREDIT_CARD"),
    ("glued-underscores", f"ref_{CARD}_end", "CREDIT_CARD"),
    ("url-percent", f"https://pay.example/cb?ref%3D{CARD}", "CREDIT_CARD"),
    ("base64", base64.b64encode(CARD.encode()).decode(), "CREDIT_CARD"),
    ("uatp", "122000000000003", "CREDIT_CARD"),
    ("diners-4442", "3622 7206 2716 67", "CREDIT_CARD"),
    ("json-in-string", json.dumps({"pan": spaced("-")}), "CREDIT_CARD"),
    ("split-array", ["4111", "1111", "1111", "1111"], "CREDIT_CARD"),
    ("split-digits", [4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "CREDIT_CARD"),
    ("ssn-dots", "078.05.1123", "US_SSN"),
    ("ssn-context", "SSN: 078051123", "US_SSN"),
    ("ssn-spaces", "078 05 1123", "US_SSN"),
    ("iban-lower", "de89370400440532013000", "IBAN"),
    ("iban-dashes", "DE89-3704-0044-0532-0130-00", "IBAN"),
    ("email-percent", "jane.doe%40example.com", "EMAIL"),
    ("email-idn", "jane@xn--bcher-kva.example", "EMAIL"),
    ("phone-il", "+972-50-123-4567", "PHONE"),
    ("phone-jp", "03-1234-5678", "PHONE"),
    ("phone-cn", "+86 138 0013 8000", "PHONE"),
    # Forms of the second review (2026-12-02).
    ("ansi-colours", "card \x1b[1;36m4111\x1b[0m 1111 \x1b[1m1111\x1b[0m 1111", "CREDIT_CARD"),
    ("tag-characters", "".join(chr(0xE0000 + ord(c)) for c in CARD), "CREDIT_CARD"),
    ("right-to-left-override", "card: \u202e1111 1111 1111 1114\u202c", "CREDIT_CARD"),
    ("node-buffer", json.dumps({"type": "Buffer", "data": list(CARD.encode())}), "CREDIT_CARD"),
    ("iban-combining-mark", "DE\u030889370400440532013000", "IBAN"),
    ("mime-encoded-word", "=?UTF-8?Q?jane.doe=40example.com?=", "EMAIL"),
    ("phones-in-a-row", "052 5552606 074-7111234", "PHONE"),
    ("whatsapp-link", "https://wa.me/447700900123", "PHONE"),
    ("local-number", "phone: 555-1234", "PHONE"),
]
CLEAN = [
    "card 4111 1111 1111 1112 was declined",  # bad Luhn
    "EAN 4006381333931, ISBN 978-3-16-148410-0",
    "tracking 1Z999AA10123456784, order 123e4567-e89b-12d3-a456-426614174000",
    "delivered 2026-11-23 14:05 to 192.168.100.200, total 1,234,567.89",
    "prices 590.14 304.52 346.08 at POINT(-66.56689 46.76254), zip 02540-4119",
    "draw 40-17-48-3-45-48",
]


def test_every_evasion_form_is_quarantined(stack: EmbeddedStack, run_worker: RunWorker) -> None:
    run = uuid.uuid4().hex[:8]
    worker = run_worker()
    plan: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]], str, str | None]]
    plan = []
    for n, (_label, value, detector) in enumerate(EVASIONS):
        record = payment(run, n, notes=value)
        plan.append(("restricted.payments", None, js(record), [], "dlp", detector))
    for n, text in enumerate(CLEAN, start=len(EVASIONS)):
        plan.append(
            ("restricted.payments", None, js(payment(run, n, notes=text)), [], "forward", None)
        )
    sent = asyncio.run(produce(stack.bootstrap, plan))
    expected = {s.record_id for s in sent}
    evasions = {s.record_id for s in sent[: len(EVASIONS)]}

    def done(out: dict[str, list[Any]]) -> bool:
        seen = {
            (header(r, "zoneapp-record-id") or b"").decode()
            for t in ("confidential.payments", "restricted.quarantine")
            for r in out[t]
        }
        reported = {
            "{topic}/{partition}/{offset}".format(**json.loads(r.value)["source"])
            for r in out["security.violations"]
        }
        # Each quarantined record's violation event too: it is checked below.
        return expected <= seen and evasions <= reported

    out = asyncio.run(
        read_all(
            stack.bootstrap,
            ["confidential.payments", "restricted.quarantine", "security.violations"],
            done,
        )
    )
    assert "Traceback" not in worker.log_text()
    forwarded = {
        (header(r, "zoneapp-record-id") or b"").decode() for r in out["confidential.payments"]
    }
    quarantined = {
        (header(r, "zoneapp-record-id") or b"").decode() for r in out["restricted.quarantine"]
    }
    events = {
        "{topic}/{partition}/{offset}".format(**e["source"]): e
        for e in (json.loads(r.value) for r in out["security.violations"])
    }
    for s, (label, value, _detector) in zip(sent, EVASIONS, strict=False):
        assert s.record_id in quarantined and s.record_id not in forwarded, label
        event = events[s.record_id]
        assert (event["reason"], event["detector"]) == ("dlp", s.detector), label
        raw = json.dumps(event)
        if isinstance(value, str):
            assert value not in raw and quote(value) not in raw, label
        assert CARD not in raw and "078051123" not in raw
    for s in sent[len(EVASIONS) :]:
        assert s.record_id in forwarded, s
