"""Property tests over the boundary guard (issue 10, item 4).

Hypothesis builds batches of records the way no producer should: random JSON (deep, wide,
Unicode keys, duplicate keys, huge numbers), bytes that are not UTF-8, random keys and
headers, tombstones, and sensitive values planted anywhere in a form the README's DLP
section says is caught. Invariants, for every batch:

- ``handle`` never raises;
- every record becomes exactly one forward, or one quarantine plus one violation;
- no forwarded value, key or header holds a planted value, by a checker of its own
  (NFKC, separators removed, base64 and percent decoding) that does not use the DLP.

CI runs ``ZONEAPP_FUZZ_EXAMPLES`` (default 200) examples; ``make fuzz`` runs 10,000.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import re
import unicodedata
import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from zoneapp.core.sanitizer import RawRecord
from zoneapp.dlp.credit_card import luhn_check_digit
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledPolicy, compile_policy_text
from zoneapp.vault import MemoryTokenVault

EXAMPLES = int(os.environ.get("ZONEAPP_FUZZ_EXAMPLES", "200"))
ZONES = ("restricted", "confidential")

POLICY = b"""
version: "fuzz-1"
tenant_id: tenant_id
security_topic: security.violations
quarantine_suffix: quarantine
limits: {max_record_bytes: 65536, max_depth: 12}
zones:
  - {name: restricted, level: restricted}
  - {name: confidential, level: confidential}
dlp:
  detectors: [CREDIT_CARD, US_SSN, IBAN, EMAIL]
boundaries:
  - name: fuzz
    source: restricted.in
    destination: confidential.out
    unclassified: suppress
    key: {transform: keep, class: confidential}
    headers:
      unlisted: drop
      rules:
        x-note: {transform: keep, class: confidential}
    fields:
      tenant_id: {transform: keep, class: confidential}
      id: {transform: keep, class: confidential}
      notes: {transform: keep, class: confidential}
      tags[]: {transform: keep, class: confidential}
      card: {transform: tokenize, class: restricted, format: card, field_class: card}
      email: {transform: tokenize, class: restricted, field_class: email}
      ssn: {transform: mask, class: restricted, keep_last: 4}
"""

# -- planted values, in forms the DLP documents as caught -------------------------------

IBANS = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606"]


@st.composite
def cards(draw: st.DrawFn) -> str:
    body = "4" + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=14, max_size=14)))
    return body + luhn_check_digit(body)


def _grouped(digits: str, sep: str) -> str:
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


FULL_WIDTH = {ord("0") + d: 0xFF10 + d for d in range(10)}  # full-width digits
CARD_FORMS: list[Callable[[str], str]] = [
    lambda c: c,
    lambda c: _grouped(c, " "),
    lambda c: _grouped(c, "."),
    lambda c: _grouped(c, "-"),
    lambda c: _grouped(c, "/"),
    lambda c: _grouped(c, "\u00a0"),
    lambda c: "\u200b".join(c),
    lambda c: "\u00ad".join(c),
    lambda c: c.translate(FULL_WIDTH),
    lambda c: f"REF{c}X",
    lambda c: base64.b64encode(f"card {c}".encode()).decode(),
    lambda c: "pay?card%3D" + c,
]


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, str]:
    """(the secret, as the checker looks for it; the text written into the record)."""
    kind = draw(st.sampled_from(["card", "ssn", "iban", "email"]))
    if kind == "card":
        card = draw(cards())
        return card, draw(st.sampled_from(CARD_FORMS))(card)
    if kind == "ssn":
        area = draw(st.integers(1, 665))
        group, serial = draw(st.integers(1, 99)), draw(st.integers(1, 9999))
        ssn = f"{area:03d}-{group:02d}-{serial:04d}"
        return ssn.replace("-", ""), draw(st.sampled_from([ssn, f"SSN: {ssn.replace('-', '')}"]))
    if kind == "iban":
        iban = draw(st.sampled_from(IBANS))
        form = draw(st.sampled_from([iban, iban.lower(), _grouped(iban, "-")]))
        return iban.lower(), form
    user = draw(st.from_regex(r"[a-z]{3,10}\.[a-z]{3,10}", fullmatch=True))
    email = f"{user}@example.com"
    return email, draw(st.sampled_from([email, urllib.parse.quote(email, safe=""), email.upper()]))


# -- random records ----------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.sampled_from([2**64, -(2**63) - 1, 10**30])  # beyond 64 bits: refused as JSON
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
FIELDS = ["id", "notes", "tags", "card", "email", "ssn", "extra", "nested"]


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits: write the JSON text by hand
        return repr(value).encode() if isinstance(value, int) else b"null"


@st.composite
def record_values(draw: st.DrawFn) -> tuple[bytes | None, list[str]]:
    """A record's value bytes, and the secrets planted in it."""
    shape = draw(st.sampled_from(["object"] * 5 + ["json", "bytes", "tombstone"]))
    if shape == "tombstone":
        return None, []
    if shape == "bytes":
        return draw(st.binary(max_size=80)), []
    if shape == "json":
        return _dumps(draw(json_values)), []
    secrets: list[str] = []
    # Most records name a tenant, so they are sanitized and forwarded, not refused early.
    members: list[tuple[str, bytes]] = []
    if draw(st.integers(0, 7)):
        members.append(("tenant_id", orjson.dumps(draw(st.sampled_from(["acme", "globex"])))))
    names = draw(st.lists(st.sampled_from(FIELDS), max_size=8))
    if draw(st.integers(0, 4)):
        names = list(dict.fromkeys(names))  # duplicate keys in one record of five
    for name in names:
        if draw(st.integers(0, 4)) == 0:
            secret, text = draw(planted())
            secrets.append(secret)
            value: Any = [text] if name == "tags" else text
            if name == "nested":
                value = {"deep": {"er": text}}
        elif name in ("extra", "nested") or draw(st.integers(0, 4)) == 0:
            value = draw(json_values)  # suppressed fields, or the wrong type for a rule
        else:
            words = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
            chosen: st.SearchStrategy[Any] = (
                st.lists(words, max_size=3)
                if name == "tags"
                else cards()
                if name == "card"
                else words
            )
            value = draw(chosen)
        members.append((name, _dumps(value)))  # repeated names stay: duplicate keys
    body = b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in members) + b"}"
    if draw(st.integers(0, 9)) == 0:
        body = body[: draw(st.integers(0, len(body)))]  # truncated JSON
    return body, secrets


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[RawRecord], list[str]]:
    records: list[RawRecord] = []
    secrets: list[str] = []
    for offset in range(draw(st.integers(1, 6))):
        value, planted_here = draw(record_values())
        secrets += planted_here
        key: bytes | None = draw(
            st.text(max_size=20).map(orjson.dumps) | st.none() | st.binary(max_size=24)
        )
        if draw(st.integers(0, 4)) == 0:
            secret, text = draw(planted())
            secrets.append(secret)
            key = text.encode()
        headers = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["x-note", "x-other", "content-type"]),
                    st.text(max_size=10).map(str.encode) | st.binary(max_size=10),
                ),
                max_size=3,
            )
        )
        if draw(st.integers(0, 4)) == 0:
            secret, text = draw(planted())
            secrets.append(secret)
            headers.append(("x-note", text.encode()))
        records.append(
            RawRecord("restricted.in", 0, offset, key, value, headers, 1_763_800_000_000)
        )
    return records, secrets


# -- the independent checker -------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s./_\-\u00a0\u200b\u00ad:=]+")
_B64 = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


def _texts(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    found = [text, urllib.parse.unquote(text)]
    with contextlib.suppress(orjson.JSONDecodeError):
        found += [s for s in _strings(orjson.loads(data)) if s]
    for token in _B64.findall(text):
        padded = token + "=" * (-len(token) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                found.append(decode(padded).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                continue
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _holds(data: bytes, secret: str) -> bool:
    for text in _texts(data):
        flat = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).lower()
        if secret.replace("-", "").replace(".", "") in flat.replace(".", ""):
            return True
    return False


# -- the property ------------------------------------------------------------------------


def _policy() -> CompiledPolicy:
    return compile_policy_text(POLICY, "<fuzz>")


FUZZ_POLICY = _policy()


async def _run(records: list[RawRecord], policy: CompiledPolicy = FUZZ_POLICY) -> MemorySink:
    provider = MemoryKeyProvider()
    await provider.provision(ZONES)
    await provider.open(ZONES)
    try:
        sink = MemorySink()
        guard = BoundaryGuard(
            policy,
            policy.boundary("fuzz"),
            KeyRing(provider, ZONES),
            MemoryTokenVault(),
            sink,
        )
        await guard.handle(records)
        return sink
    finally:
        await provider.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batches())
def test_the_guard_loses_nothing_and_forwards_no_planted_value(
    batch: tuple[list[RawRecord], list[str]],
) -> None:
    records, secrets = batch
    sink = asyncio.run(_run(records))  # never raises: an exception fails the property
    forwarded = sink.on("confidential.out")
    quarantined = sink.on("restricted.quarantine")
    violations = sink.on("security.violations")
    assert len(sink.sent) == len(forwarded) + len(quarantined) + len(violations)
    assert len(quarantined) == len(violations)
    offsets = sorted(
        int(dict(headers)["zoneapp-source-offset"]) for _, _, _, headers in forwarded + quarantined
    )
    assert offsets == [r.offset for r in records]  # exactly one outcome per record
    event(f"forwarded {round(4 * len(forwarded) / len(records)) / 4:.0%} of the batch")
    for _, key, value, headers in forwarded:
        parts = [key or b"", value or b"", *(v for _, v in headers)]
        for secret in secrets:
            leaked = [i for i, part in enumerate(parts) if _holds(part, secret)]
            assert not leaked, f"a planted value crossed in output part {leaked}"
    for _, _, value, _ in violations:  # value-free events
        for secret in secrets:
            assert not _holds(value or b"", secret)


def test_the_checker_sees_every_planted_form_when_the_dlp_is_off() -> None:
    """The property can fail: with no detector, each form crosses and the checker says so."""
    blind = compile_policy_text(POLICY.replace(b"[CREDIT_CARD, US_SSN, IBAN, EMAIL]", b"[]"))
    card = "4556737586899855"
    forms = [form(card) for form in CARD_FORMS]
    records = [
        RawRecord(
            "restricted.in", 0, i, None, orjson.dumps({"tenant_id": "t", "notes": text}), [], None
        )
        for i, text in enumerate(forms)
    ]
    forwarded = asyncio.run(_run(records, blind)).on("confidential.out")
    assert len(forwarded) == len(forms)
    assert all(_holds(value or b"", card) for _, _, value, _ in forwarded)
    assert not _holds(orjson.dumps({"notes": "4556 7375 8689 9856"}), card)
