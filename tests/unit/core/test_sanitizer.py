"""The sanitizer on the unit tests' policy (tests/fixtures/policy.yaml): what crosses,
what is blocked, and why."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fixtures import POLICY as UNIT_POLICY
from tests.records import CARD, EMAIL, IBAN, NAME, PHONE, SENSITIVE, SSN, payment, raw
from zoneapp.core.sanitizer import BoundarySanitizer, Forward, Quarantine
from zoneapp.dlp.credit_card import luhn_ok as luhn_valid
from zoneapp.keys.envelope import KeyRing
from zoneapp.policy import CompiledPolicy, compile_policy_text, load_policy


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy(UNIT_POLICY)


@pytest.fixture
async def payments(policy: CompiledPolicy, keyring: KeyRing) -> BoundarySanitizer:
    s = BoundarySanitizer(policy, policy.boundary("payments-to-confidential"))
    for zone, purpose in s.hmac_purposes():
        keyring.require_hmac(zone, purpose)
    await keyring.prepare()
    return s


def assert_clean(out: Forward) -> None:
    blob = (out.value or b"") + (out.key or b"") + b"".join(v for _, v in out.headers)
    for secret in SENSITIVE:
        assert secret.encode() not in blob, secret


def forward(s: BoundarySanitizer, keyring: KeyRing, record: Any, **kw: Any) -> Forward:
    out = s.sanitize(raw(record, **kw), keyring)
    assert isinstance(out, Forward), out
    return out


def quarantine(s: BoundarySanitizer, keyring: KeyRing, record: Any, **kw: Any) -> Quarantine:
    out = s.sanitize(raw(record, **kw), keyring)
    assert isinstance(out, Quarantine), out
    return out


async def test_payment_is_sanitized(payments: BoundarySanitizer, keyring: KeyRing) -> None:
    out = forward(
        payments,
        keyring,
        payment(device_fingerprint="abc"),
        headers=[
            ("content-type", b"application/json"),
            ("x-customer-email", EMAIL.encode()),
            ("x-internal-secret", b"s3cr3t"),
        ],
    )
    value = orjson.loads(out.value or b"")
    assert_clean(out)
    card = value["card_number"]
    assert len(card) == len(CARD) and card.endswith("1111") and card != CARD
    assert not luhn_valid(card.replace(" ", ""))
    for dropped in ("cvv", "card_expiry", "card_last4", "device_fingerprint"):
        assert dropped not in value
    assert value["ssn"] == "***-**-6789"
    assert value["customer"]["name"].startswith("h1.")
    assert (
        value["customer"]["date_of_birth"].endswith("9")
        and "-" in value["customer"]["date_of_birth"]
    )
    assert value["customer"]["zip"] == "941"
    assert value["customer"]["email"].startswith("tok_")
    assert value["customer"]["phone"].startswith("zenc2.")
    assert value["billing"] == {"iban": value["billing"]["iban"], "country": "DE"}
    assert value["billing"]["iban"].startswith("zenc2.")
    assert value["items"][1] == {"sku": "B-2", "quantity": 1, "price": 120.95}
    assert value["merchant"]["name"] == "Blue Bottle"
    assert value["amount"] == 129.95
    # key: keyed hash, JSON-encoded
    assert orjson.loads(out.key or b"").startswith("h1.")
    headers = dict(out.headers)
    assert headers["content-type"] == b"application/json"
    assert headers["x-customer-email"].startswith(b"h1.")
    assert "x-internal-secret" not in headers
    assert headers["zoneapp-source-topic"] == b"restricted.payments"
    assert headers["zoneapp-source-offset"] == b"7"
    assert headers["zoneapp-boundary"] == b"payments-to-confidential"
    assert headers["zoneapp-policy-version"] == b"unit-fixture.1"
    assert len(headers["zoneapp-policy-hash"]) == 64
    assert headers["zoneapp-record-id"] == b"restricted.payments/1/7"
    # 1 unclassified field + 1 unlisted header
    assert out.suppressed == 2
    assert out.applied["tokenize"] == 2 and out.applied["encrypt"] == 2
    assert len(out.vault_entries) == 2


async def test_same_input_same_tokens_across_records(
    payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    a = orjson.loads(forward(payments, keyring, payment()).value or b"")
    b = orjson.loads(forward(payments, keyring, payment(payment_id="pay_2")).value or b"")
    assert a["card_number"] == b["card_number"]
    assert a["customer"]["email"] == b["customer"]["email"]
    assert a["customer"]["phone"] != b["customer"]["phone"]  # encryption is randomized


@pytest.mark.parametrize(
    ("notes", "detector"),
    [
        ("my card is 4111-1111-1111-1111 thanks", "CREDIT_CARD"),
        ("ssn 219-45-6789", "US_SSN"),
        ("refund to GB82 WEST 1234 5698 7654 32", "IBAN"),
        ("mail me at jane.doe@example.com", "EMAIL"),
        ("call (415) 555-2671", "PHONE"),
        ("badge EMP-123456", "EMPLOYEE_ID"),
    ],
)
async def test_pii_in_free_text_is_blocked(
    notes: str, detector: str, payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    out = quarantine(payments, keyring, payment(notes=notes))
    assert [(p.reason, p.path, p.detector) for p in out.problems] == [("dlp", "notes", detector)]


@pytest.mark.parametrize(
    "notes",
    [
        "card 4111-1111-1111-1112 (typo)",  # fails Luhn
        "ssn 000-12-3456",  # invalid area
        "iban GB82 WEST 1234 5698 7654 33",  # fails mod-97
        "order 1763788800000 placed",  # epoch millis
        "meet at 10:30 on 2026-11-22",
    ],
)
async def test_near_misses_pass(notes: str, payments: BoundarySanitizer, keyring: KeyRing) -> None:
    value = orjson.loads(forward(payments, keyring, payment(notes=notes)).value or b"")
    assert value["notes"] == notes


async def test_card_as_json_number_in_kept_field_is_blocked(
    payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    out = quarantine(payments, keyring, payment(amount=4111111111111111))
    assert out.problems[0].detector == "CREDIT_CARD" and out.problems[0].path == "amount"


async def test_pii_in_nested_array_is_blocked(
    payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    items = [
        {"sku": "A", "quantity": 1, "price": 1},
        {"sku": "jane.doe@example.com", "quantity": 1, "price": 1},
    ]
    out = quarantine(payments, keyring, payment(items=items))
    assert out.problems[0].path == "items[].sku"  # the rule's path, not the index


async def test_pii_in_kept_header_is_blocked(payments: BoundarySanitizer, keyring: KeyRing) -> None:
    out = quarantine(payments, keyring, payment(), headers=[("x-request-id", b"4111111111111111")])
    assert (out.problems[0].path, out.problems[0].detector) == (
        "$headers.x-request-id",
        "CREDIT_CARD",
    )


@pytest.mark.parametrize(
    ("value", "reason", "path"),
    [
        (b'{"tenant_id": "acme", "card_number": ', "invalid_json", "$value"),
        (b'\xff\xfe{"a": 1}', "invalid_utf8", "$value"),
        (b"[1, 2, 3]", "wrong_type", "$value"),
        (b'"just a string"', "wrong_type", "$value"),
        (b'{"tenant_id": "acme", "x": NaN}', "invalid_json", "$value"),
        (payment(card_number={"number": CARD}), "wrong_type", "card_number"),
        (payment(items={"sku": "A"}), "wrong_type", "items"),
        (payment(customer="Jane"), "wrong_type", "customer"),
        (payment(card_number="N/A"), "invalid_value", "card_number"),
        (
            payment(customer={"date_of_birth": "yesterday"}),
            "invalid_value",
            "customer.date_of_birth",
        ),
        ({k: v for k, v in payment().items() if k != "tenant_id"}, "missing_tenant", "tenant_id"),
        (payment(tenant_id={"id": 1}), "missing_tenant", "tenant_id"),
    ],
)
async def test_bad_input_is_quarantined(
    value: Any, reason: str, path: str, payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    out = quarantine(payments, keyring, value)
    assert (out.problems[0].reason, out.problems[0].path) == (reason, path)


async def test_huge_record_is_quarantined(payments: BoundarySanitizer, keyring: KeyRing) -> None:
    out = quarantine(payments, keyring, payment(notes="x" * 300_000))
    assert out.reason == "too_large"


@pytest.mark.parametrize("depth", [20, 5000])
async def test_deep_record_is_quarantined(
    depth: int, payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    deep = b'{"tenant_id": "acme", "notes": ' + b"[" * depth + b"]" * depth + b"}"
    out = quarantine(payments, keyring, deep)
    assert out.reason == "too_deep"


async def test_non_utf8_key_and_header(payments: BoundarySanitizer, keyring: KeyRing) -> None:
    assert quarantine(payments, keyring, payment(), key=b"\xff").problems[0].path == "$key"
    out = quarantine(payments, keyring, payment(), headers=[("content-type", b"\xff")])
    assert out.problems[0].path == "$headers.content-type"


async def test_plain_string_key_is_hashed(payments: BoundarySanitizer, keyring: KeyRing) -> None:
    out = forward(payments, keyring, payment(), key=b"jane.doe@example.com")
    assert orjson.loads(out.key or b"").startswith("h1.")
    assert_clean(out)


async def test_tombstone_keeps_key_sanitized(payments: BoundarySanitizer, keyring: KeyRing) -> None:
    out = forward(payments, keyring, None)
    assert out.value is None and orjson.loads(out.key or b"").startswith("h1.")


async def test_lineage_headers_from_upstream_are_replaced(
    payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    out = forward(payments, keyring, payment(), headers=[("zoneapp-source-topic", b"forged")])
    assert [v for k, v in out.headers if k == "zoneapp-source-topic"] == [b"restricted.payments"]


BLOCKING = """\
version: "1"
tenant_id: tenant
zones:
  - {name: restricted, level: restricted}
  - {name: internal, level: internal}
boundaries:
  - name: b
    source: restricted.in
    destination: internal.out
    unclassified: block
    key: {transform: suppress}
    headers: {unlisted: block}
    fields:
      tenant: {transform: keep, class: internal}
      attrs.*: {transform: keep, class: internal}
      contact: {transform: hash}
      born: suppress
    derive:
      contact_year: {from: born, transform: generalize, to: year}
    allow:
      - {path: attrs.support_phone, detectors: [PHONE]}
"""


async def prepared(text: str, keyring: KeyRing) -> BoundarySanitizer:
    """The sanitizer of the first boundary of policy ``text``, its keys prepared."""
    policy = compile_policy_text(text.encode())
    s = BoundarySanitizer(policy, policy.boundaries[0])
    for zone, purpose in s.hmac_purposes():
        keyring.require_hmac(zone, purpose)
    await keyring.prepare()
    return s


@pytest.fixture
async def blocking(keyring: KeyRing) -> BoundarySanitizer:
    return await prepared(BLOCKING, keyring)


async def test_unclassified_field_blocks_when_policy_says_so(
    blocking: BoundarySanitizer, keyring: KeyRing
) -> None:
    out = quarantine(blocking, keyring, {"tenant": "t", "surprise": 1}, headers=[])
    assert (out.reason, out.problems[0].path) == ("unclassified_field", "*")


async def test_field_name_that_is_pii_is_not_repeated(
    blocking: BoundarySanitizer, keyring: KeyRing
) -> None:
    out = quarantine(blocking, keyring, {"tenant": "t", EMAIL: 1}, headers=[])
    assert out.problems[0].path == "*"  # a name the policy does not know is never shown


async def test_unlisted_header_blocks_when_policy_says_so(
    blocking: BoundarySanitizer, keyring: KeyRing
) -> None:
    out = quarantine(blocking, keyring, {"tenant": "t"}, headers=[("x", b"1")])
    assert (out.reason, out.problems[0].path) == ("unlisted_header", "$headers.*")


async def test_wildcard_keys_are_scanned_and_allow_list_applies(
    blocking: BoundarySanitizer, keyring: KeyRing
) -> None:
    ok = forward(
        blocking,
        keyring,
        {"tenant": "t", "attrs": {"support_phone": PHONE, "colour": "red"}},
        headers=[],
    )
    assert orjson.loads(ok.value or b"")["attrs"]["support_phone"] == PHONE
    assert ok.key is None
    bad = quarantine(
        blocking, keyring, {"tenant": "t", "attrs": {"other_phone": PHONE}}, headers=[]
    )
    assert bad.problems[0].path == "attrs.*"
    key_pii = quarantine(blocking, keyring, {"tenant": "t", "attrs": {SSN: "x"}}, headers=[])
    assert key_pii.problems[0].detector == "US_SSN"


async def test_derived_field(blocking: BoundarySanitizer, keyring: KeyRing) -> None:
    out = forward(
        blocking, keyring, {"tenant": "t", "born": "1990-05-01", "contact": NAME}, headers=[]
    )
    value = orjson.loads(out.value or b"")
    assert value["contact_year"] == 1990 and "born" not in value
    assert value["contact"].startswith("h1.")


async def test_problems_never_carry_values(payments: BoundarySanitizer, keyring: KeyRing) -> None:
    for notes in (f"card {CARD}", f"iban {IBAN}", f"phone {PHONE}"):
        out = quarantine(payments, keyring, payment(notes=notes))
        text = repr(out.problems)
        for secret in SENSITIVE:
            assert secret not in text


@pytest.mark.parametrize(
    ("notes", "detector"),
    [
        (["4111", "1111", "1111", "1111"], "CREDIT_CARD"),  # a value split across an array
        ([4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "CREDIT_CARD"),
        (4111111111111111, "CREDIT_CARD"),  # a JSON integer
        (4111111111111111.0, "CREDIT_CARD"),  # a JSON float
        ({"ssn": 219456789}, "US_SSN"),  # a 9-digit integer under an SSN key
        ("4111\u00a01111\u00a01111\u00a01111", "CREDIT_CARD"),
        ("card%3D4111111111111111", "CREDIT_CARD"),
    ],
)
async def test_numbers_and_split_values_in_kept_fields(
    notes: Any, detector: str, payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    out = quarantine(payments, keyring, payment(notes=notes))
    assert [(p.reason, p.detector) for p in out.problems][:1] == [("dlp", detector)]
    assert all(p.path.startswith("notes") for p in out.problems)


async def test_integer_beyond_64_bits_is_never_carried_as_a_float(
    payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    """orjson reads it as a float, whose digits are not the producer's: quarantined."""
    body = orjson.dumps(payment(notes=0)).replace(b'"notes":0', b'"notes":41111111111111111111111')
    out = payments.sanitize(raw(body), keyring)
    assert isinstance(out, Quarantine)
    assert [(p.reason, p.path) for p in out.problems] == [("invalid_value", "notes")]
    assert "4111" not in repr(out.problems)


async def test_keyed_outputs_are_scanned_but_not_decoded(
    payments: BoundarySanitizer, keyring: KeyRing
) -> None:
    """Ciphertexts, hashes and tokens reach the scanner marked opaque (never decoded:
    the producer does not choose their text); kept values are not opaque."""
    seen: list[tuple[list[tuple[str, str]], set[int]]] = []
    real = payments.scanner

    class Recording:
        def scan(self, items: Any, opaque: Any = ()) -> Any:
            seen.append((list(items), set(opaque)))
            return real.scan(items, opaque)

        def scan_text(self, text: str) -> Any:
            return real.scan_text(text)

    payments.scanner = Recording()  # type: ignore[assignment]
    try:
        forward(payments, keyring, payment(notes="hello"), key=b'"pay_1"')
    finally:
        payments.scanner = real
    ((items, opaque),) = seen
    opaque_paths = {items[i][0] for i in opaque}
    assert {"card_number", "customer.name", "customer.email", "customer.phone"} <= opaque_paths
    assert "$key" in opaque_paths
    assert not opaque_paths & {"notes", "payment_id", "merchant.name", "amount"}


# -- issue 8 ---------------------------------------------------------------------------------

POLICY = """\
version: "1"
tenant_id: tenant_id
subject_id: email
subject_normalizer: {normalizer}
zones:
  - {{name: restricted, level: restricted}}
  - {{name: confidential, level: confidential}}
boundaries:
  - name: b
    source: [restricted.payments, restricted.acme-payments]
    destination: confidential.payments
    key: {key}
{tenants}    fields:
      tenant_id: {{transform: keep, class: confidential}}
      email: {{transform: tokenize, class: restricted, field_class: email}}
"""


async def sanitizer_for(
    keyring: KeyRing, key: str = "hash", tenants: str = "", normalizer: str = "trim"
) -> BoundarySanitizer:
    return await prepared(POLICY.format(key=key, tenants=tenants, normalizer=normalizer), keyring)


KEY_TRANSFORMS = [
    ("{transform: keep, class: confidential}", b'"pay_000123"'),
    ("{transform: suppress}", b'"pay_000123"'),
    ("{transform: mask, keep_last: 2}", b'"pay_000123"'),
    ("{transform: hash}", b'"pay_000123"'),
    ("{transform: hash, field_class: payment_key}", b"pay_000123"),
    ("{transform: tokenize}", b'"pay_000123"'),
    ("{transform: tokenize, format: card}", b'"4111 1111 1111 1111"'),
    ("{transform: generalize, to: prefix, length: 3}", b'"94107"'),
    ("{transform: generalize, to: month}", b'"2026-11-22"'),
]
TENANTS = "    tenants: {restricted.payments: [acme, globex], restricted.acme-payments: [acme]}\n"


@pytest.mark.parametrize(("key", "raw_key"), KEY_TRANSFORMS)
@pytest.mark.parametrize("tenants", ["", TENANTS])
@pytest.mark.parametrize("topic", ["restricted.payments", "restricted.acme-payments"])
async def test_tombstone_key_equals_live_key_for_every_key_transform(
    keyring: KeyRing, key: str, raw_key: bytes, tenants: str, topic: str
) -> None:
    """issue 8 item 14: the key transform mixed in the body's tenant, which a tombstone lacks."""
    s = await sanitizer_for(keyring, key, tenants)
    live = forward(s, keyring, {"tenant_id": "acme", "email": EMAIL}, key=raw_key, topic=topic)
    tomb = forward(s, keyring, None, key=raw_key, topic=topic)
    assert tomb.value is None and tomb.key == live.key
    if "suppress" not in key and "keep" not in key:
        assert live.key is not None and raw_key.strip(b'"') not in live.key
    key_entries = [e for e in live.vault_entries if e.field_class != "email"]
    for entry in key_entries:  # the key's token: in the topic's tenant (or none), not the body's
        bound = tenants and topic == "restricted.acme-payments"
        assert entry.tenant == ("acme" if bound else "")
        assert entry.subject == (live.vault_entries[0].subject if bound else None)
    # The tombstone's key maps to the very same vault entry (tenant and token).
    assert {(e.tenant, e.token) for e in tomb.vault_entries} == {
        (e.tenant, e.token) for e in key_entries
    }


async def test_tombstone_of_user_pii_reaches_the_same_key(keyring: KeyRing) -> None:
    """The user-pii boundary tokenizes its key."""
    policy = load_policy(UNIT_POLICY)
    s = BoundarySanitizer(policy, policy.boundary("user-pii-to-confidential"))
    for zone, purpose in s.hmac_purposes():
        keyring.require_hmac(zone, purpose)
    await keyring.prepare()
    user = {"tenant_id": "acme", "user_id": "u1", "email": EMAIL}
    live = forward(s, keyring, user, key=b'"u1"', topic="restricted.user-pii")
    tomb = forward(s, keyring, None, key=b'"u1"', topic="restricted.user-pii")
    assert live.key == tomb.key and live.key is not None and b"u1" not in live.key


@pytest.mark.parametrize(
    ("topic", "tenant", "ok"),
    [
        ("restricted.acme-payments", "acme", True),
        ("restricted.acme-payments", "globex", False),
        ("restricted.payments", "globex", True),
        ("restricted.payments", "initech", False),
    ],
)
async def test_tenant_not_bound_to_the_source_topic_is_quarantined(
    keyring: KeyRing, topic: str, tenant: str, ok: bool
) -> None:
    """issue 8 item 3: a producer of restricted.acme-payments writes tenant_id: globex."""
    s = await sanitizer_for(keyring, tenants=TENANTS)
    record = {"tenant_id": tenant, "email": EMAIL}
    if ok:
        forward(s, keyring, record, topic=topic)
        return
    out = quarantine(s, keyring, record, topic=topic)
    assert [(p.reason, p.path, p.detail) for p in out.problems] == [
        ("tenant_mismatch", "tenant_id", None)
    ]
    assert out.applied == {}  # nothing hashed or tokenized: no vault entry under globex


@pytest.mark.parametrize("tenant", ["_", "a{b", "x}", "{acme}"])
async def test_reserved_tenant_ids_are_refused(keyring: KeyRing, tenant: str) -> None:
    s = await sanitizer_for(keyring)
    out = quarantine(s, keyring, {"tenant_id": tenant, "email": EMAIL})
    assert out.problems[0].reason == "invalid_value"


async def test_subject_ids_are_normalized_before_hashing(keyring: KeyRing) -> None:
    """issue 8 item 15: Jane.Doe@Example.com and jane.doe@example.com are one subject."""
    email = await sanitizer_for(keyring, normalizer="email")
    trim = await sanitizer_for(keyring, normalizer="trim")
    exact = await sanitizer_for(keyring, normalizer="exact")

    def subject(s: BoundarySanitizer, value: str) -> str | None:
        parsed = s.parse(raw({"tenant_id": "acme", "email": value}), keyring)
        assert not isinstance(parsed, Quarantine)
        return parsed.subject

    spellings = ["jane.doe@example.com", "Jane.Doe@Example.com", " JANE.DOE@EXAMPLE.COM\t"]
    assert len({subject(email, v) for v in spellings}) == 1
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "jane")  # NFKC folds them to ASCII
    assert subject(email, full_width + ".doe@example.com") == subject(email, spellings[0])
    assert subject(trim, " jane.doe@example.com ") == subject(trim, "jane.doe@example.com")
    assert subject(trim, "Jane.Doe@Example.com") != subject(trim, "jane.doe@example.com")
    assert subject(exact, " jane.doe@example.com") != subject(exact, "jane.doe@example.com")
    assert subject(email, "   ") is None


BORROWED_ALLOW = """\
version: "1"
tenant_id: tenant
zones:
  - {name: restricted, level: restricted}
  - {name: internal, level: internal}
boundaries:
  - name: b
    source: restricted.in
    destination: internal.out
    key: {transform: suppress}
    fields:
      tenant: {transform: keep, class: internal}
      attrs.*: {transform: keep, class: internal}
      attrs.contact.phone: {transform: keep, class: internal}
    allow:
      - {path: attrs.contact.phone, detectors: [PHONE]}
"""


@pytest.mark.parametrize("key", ["contact.phone", "contact[0]", '"contact"', "$key", ""])
async def test_a_producer_key_cannot_borrow_another_fields_allow_list(
    keyring: KeyRing, key: str
) -> None:
    """A key spelled like path syntax gets a path of its own: its finding is placed at
    the wildcard's place, never at the allowed field it would otherwise collide with."""
    s = await prepared(BORROWED_ALLOW, keyring)
    allowed = forward(
        s, keyring, {"tenant": "t", "attrs": {"contact": {"phone": PHONE}}}, headers=[]
    )
    assert orjson.loads(allowed.value or b"")["attrs"]["contact"]["phone"] == PHONE
    smuggled = {"tenant": "t", "attrs": {key: PHONE, "contact": {"phone": PHONE}}}
    out = quarantine(s, keyring, smuggled, headers=[])
    assert [(p.reason, p.path, p.detector) for p in out.problems] == [("dlp", "attrs.*", "PHONE")]
