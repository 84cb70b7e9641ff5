"""Each transform on its own, with real keys from the in-memory provider."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.records import colliding_cards
from zoneapp.dlp.credit_card import luhn_ok as luhn_valid
from zoneapp.keys.base import DecryptionError
from zoneapp.keys.envelope import Aad, KeyRing
from zoneapp.policy.errors import ParamError
from zoneapp.transforms import (
    SUPPRESS,
    RecordContext,
    TokenCollisionError,
    TransformSpec,
    TransformTypeError,
    build_transform,
)
from zoneapp.transforms.keyed import vault_aad
from zoneapp.vault import StoredTokenCache

SPEC = TransformSpec(rule_path="card_number", field_class="card", zone="restricted")


def make(name: str, spec: TransformSpec = SPEC, **params: Any) -> Any:
    return build_transform(name, params, spec)


async def ctx_for(keyring: KeyRing, *transforms: Any, tenant: str = "acme") -> RecordContext:
    for t in transforms:
        for purpose in t.hmac_purposes:
            keyring.require_hmac(t.spec.zone, purpose)
    await keyring.prepare()
    return RecordContext(
        keyring=keyring, zone="restricted", topic="confidential.payments", tenant=tenant
    )


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [
        ({}, "123-45-6789", "***-**-6789"),
        ({}, "4111-1111-1111-1881", "****-****-****-1881"),
        ({}, "4111 1111 1111 1881", "**** **** **** 1881"),
        ({"keep_last": 0}, "secret", "******"),
        ({"char": "#"}, "4111111111111881", "############1881"),
        ({"keep_separators": False}, "123-45-6789", "*****6789"),
        ({"keep_first": 1, "keep_last": 2}, "ABCDEFGH", "A*****GH"),
        ({}, 4111111111111881, "************1881"),
        ({}, "1234", "**34"),  # never reveals more than half
        ({}, None, None),
    ],
)
async def test_mask(params: dict[str, Any], value: Any, expected: Any, keyring: KeyRing) -> None:
    t = make("mask", **params)
    assert t.apply(value, await ctx_for(keyring)) == expected


@pytest.mark.parametrize("value", [{"a": 1}, [1], True])
async def test_mask_wrong_type(value: Any, keyring: KeyRing) -> None:
    with pytest.raises(TransformTypeError) as info:
        make("mask").apply(value, await ctx_for(keyring))
    assert "mask" in str(info.value)


async def test_suppress_and_keep(keyring: KeyRing) -> None:
    ctx = await ctx_for(keyring)
    assert make("suppress").apply({"x": 1}, ctx) is SUPPRESS
    assert make("keep").apply({"x": 1}, ctx) == {"x": 1}


async def test_hash_is_keyed_deterministic_and_scoped(keyring: KeyRing, provider: Any) -> None:
    t = make("hash")
    ctx = await ctx_for(keyring, t)
    a = t.apply("123-45-6789", ctx)
    assert a == t.apply("123-45-6789", ctx)
    assert a.startswith("h1.") and "6789" not in a
    assert a != t.apply("123-45-6780", ctx)
    other_tenant = await ctx_for(keyring, t, tenant="globex")
    assert a != t.apply("123-45-6789", other_tenant)
    other_class = make("hash", TransformSpec("ssn", "ssn", "restricted"))
    assert a != other_class.apply("123-45-6789", await ctx_for(keyring, other_class))
    # A second key ring on the same keys (another worker) gets the same hash.
    ring2 = KeyRing(provider, ("restricted",))
    assert t.apply("123-45-6789", await ctx_for(ring2, t)) == a
    # A number and its string are the same value.
    assert t.apply(123456789, ctx) == t.apply("123456789", ctx)


async def test_tokenize_opaque(keyring: KeyRing) -> None:
    t = make("tokenize", TransformSpec("customer.email", "email", "restricted"))
    ctx = await ctx_for(keyring, t)
    token = t.apply("jane@example.com", ctx)
    assert token.startswith("tok_") and len(token) == 36 and not any(c.isdigit() for c in token)
    assert t.apply("jane@example.com", ctx) == token
    assert t.apply("john@example.com", ctx) != token
    assert len(ctx.vault_entries) == 3
    entry = ctx.vault_entries[0]
    assert entry.token == token and entry.tenant == "acme" and entry.field_class == "email"
    assert "jane" not in repr(entry) and "jane" not in entry.ciphertext
    plain = await keyring.decrypt(entry.ciphertext, vault_aad("acme", "email", token))
    assert plain == b"jane@example.com"


async def test_tokenize_skips_vault_entry_for_known_tokens(keyring: KeyRing) -> None:
    t = make("tokenize", TransformSpec("email", "email", "restricted"))
    ctx = await ctx_for(keyring, t)
    token = t.apply("a@b.example", ctx)
    known = StoredTokenCache()
    known.add("acme", token, ctx.vault_entries[0].fingerprint)
    ctx2 = RecordContext(
        keyring=keyring, zone="restricted", topic="t", tenant="acme", stored_tokens=known
    )
    assert t.apply("a@b.example", ctx2) == token
    assert ctx2.vault_entries == []
    # The cache is per tenant: the same token text in another tenant is another mapping.
    ctx3 = RecordContext(
        keyring=keyring, zone="restricted", topic="t", tenant="globex", stored_tokens=known
    )
    t.apply("a@b.example", ctx3)
    assert len(ctx3.vault_entries) == 1


async def test_colliding_card_tokens_are_refused_when_the_cache_knows_the_token(
    keyring: KeyRing,
) -> None:
    t = make("tokenize", TransformSpec("card_number", "card", "restricted"), format="card")
    search = await ctx_for(keyring, t)
    first, second, token = colliding_cards(t, search)
    assert first != second and luhn_valid(first) and luhn_valid(second)
    ctx = await ctx_for(keyring, t)
    assert t.apply(first, ctx) == token
    known = StoredTokenCache()
    known.add("acme", token, ctx.vault_entries[0].fingerprint)
    warm = RecordContext(
        keyring=keyring, zone="restricted", topic="t", tenant="acme", stored_tokens=known
    )
    assert t.apply(first, warm) == token  # the same card: a cache hit, no vault write
    with pytest.raises(TokenCollisionError):
        t.apply(second, warm)  # today's code forwarded it under the first card's token
    assert warm.vault_entries == []


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "5555-5555-5555-4444",
        "378282246310005",
        "6011000990139424",
    ],
)
async def test_tokenize_card_format_preserving_and_never_luhn(card: str, keyring: KeyRing) -> None:
    t = make("tokenize", format="card")
    ctx = await ctx_for(keyring, t)
    token = t.apply(card, ctx)
    assert len(token) == len(card)
    assert token[-4:] == card[-4:]
    assert [c.isdigit() for c in token] == [c.isdigit() for c in card]
    digits = "".join(c for c in token if c.isdigit())
    assert not luhn_valid(digits)
    assert token != card


async def test_card_tokens_never_pass_luhn_over_many_values(keyring: KeyRing) -> None:
    t = make("tokenize", format="card")
    ctx = await ctx_for(keyring, t)
    for n in range(2000):
        body = f"4{n:011d}"
        digits = "".join(c for c in t.apply(body + "1111", ctx) if c.isdigit())
        assert not luhn_valid(digits)


async def test_tokenize_card_rejects_non_card(keyring: KeyRing) -> None:
    t = make("tokenize", format="card")
    with pytest.raises(ValueError):
        t.apply("N/A", await ctx_for(keyring, t))


async def test_encrypt_binds_topic_and_path(keyring: KeyRing) -> None:
    t = make("encrypt", TransformSpec("billing.iban", "iban", "restricted"))
    ctx = await ctx_for(keyring, t)
    out = t.apply("DE89370400440532013000", ctx)
    assert out.startswith("zenc2.") and "DE89" not in out
    assert (
        await keyring.decrypt(out, Aad.field("acme", "confidential.payments", "billing.iban"))
        == b'"DE89370400440532013000"'
    )
    with pytest.raises(DecryptionError):
        await keyring.decrypt(out, Aad.field("acme", "confidential.payments", "customer.phone"))
    with pytest.raises(DecryptionError):  # another tenant's name
        await keyring.decrypt(out, Aad.field("globex", "confidential.payments", "billing.iban"))
    assert t.apply({"nested": [1, 2]}, ctx).startswith("zenc2.")


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [
        ({"to": "year"}, "1987-03-14", 1987),
        ({"to": "year"}, "2024-02-29T10:00:00Z", 2024),
        ({"to": "month"}, "2024-02-29", "2024-02"),
        ({"to": "prefix"}, "94107", "941"),
        ({"to": "prefix", "length": 2, "pad": "*"}, "94107", "94***"),
        ({"to": "prefix"}, 94107, "941"),
        ({"to": "bucket", "width": 100, "min": 0, "max": 10_000}, 1234.5, "1200-1300"),
        ({"to": "bucket", "width": 10, "min": 0, "max": 130}, 37, "30-40"),
        ({"to": "bucket", "width": 10, "min": -50, "max": 50}, -3, "-10-0"),
        ({"to": "year"}, 1987, 1987),
        ({"to": "year"}, "1987", 1987),
    ],
)
async def test_generalize(
    params: dict[str, Any], value: Any, expected: Any, keyring: KeyRing
) -> None:
    assert make("generalize", **params).apply(value, await ctx_for(keyring)) == expected


@pytest.mark.parametrize(
    ("params", "value"),
    [
        # issue 8: `to: year` passed any integer through (an SSN, epoch milliseconds).
        ({"to": "year"}, 219456789),
        ({"to": "year"}, 1_763_800_000_000),
        ({"to": "year"}, 42),
        ({"to": "year"}, "0042"),
        ({"to": "year"}, "2194567"),
        # `bucket` takes only values of its declared range.
        ({"to": "bucket", "width": 10, "min": 1800, "max": 2201}, 4111111111111111),
        ({"to": "bucket", "width": 10, "min": 1800, "max": 2201}, 2201),
        ({"to": "bucket", "width": 10, "min": 1800, "max": 2201}, -1),
        # `prefix` never returns the whole value.
        ({"to": "prefix", "length": 5}, "94107"),
        ({"to": "prefix", "length": 3}, 12),
    ],
)
async def test_generalize_refuses_values_it_would_copy(
    params: dict[str, Any], value: Any, keyring: KeyRing
) -> None:
    with pytest.raises(ValueError) as info:
        make("generalize", **params).apply(value, await ctx_for(keyring))
    assert str(value) not in str(info.value)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"to": "bucket", "width": 10}, "needs the numbers 'min' and 'max'"),
        ({"to": "bucket", "width": 10, "min": 5, "max": 5}, "below"),
        ({"to": "bucket", "min": True, "max": 9}, "needs the numbers"),
        ({"to": "year", "min": 1}, "for 'to: bucket' only"),
    ],
)
def test_generalize_bucket_needs_a_range(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(ParamError, match=problem):
        make("generalize", **params)


@pytest.mark.parametrize(
    ("params", "copies"),
    [
        ({"to": "prefix", "length": 64}, True),
        ({"to": "prefix", "length": 7}, True),
        ({"to": "prefix", "length": 6}, False),
        ({"to": "bucket", "width": 1, "min": 0, "max": 10}, True),
        ({"to": "bucket", "width": 10, "min": 0, "max": 10**16}, True),
        ({"to": "bucket", "width": 10, "min": 1800, "max": 2201}, False),
        ({"to": "year"}, False),
        ({"to": "age_range"}, False),
    ],
)
def test_generalize_says_when_it_can_reproduce_a_value(
    params: dict[str, Any], copies: bool
) -> None:
    assert (make("generalize", **params).reproduces_value() is not None) is copies


async def test_generalize_age_range(keyring: KeyRing) -> None:
    ctx = await ctx_for(keyring)
    today = dt.datetime.now(dt.UTC).date()
    t = make("generalize", to="age_range")
    assert t.apply(f"{today.year - 35}-01-01", ctx) in ("30-39",)
    assert t.apply(f"{today.year - 95}-01-01", ctx) == "90+"
    with pytest.raises(ValueError):
        t.apply("not a date", ctx)
    with pytest.raises(TransformTypeError):
        t.apply({"y": 1}, ctx)


def test_unknown_transform_and_param() -> None:
    with pytest.raises(ParamError, match="unknown transform 'scramble'"):
        make("scramble")
    with pytest.raises(ParamError, match="unknown parameter"):
        make("hash", salt="x")


async def test_tokenize_random_mode_gives_fresh_tokens(keyring: KeyRing) -> None:
    t = make("tokenize", TransformSpec("email", "email", "restricted"), mode="random")
    card = make("tokenize", mode="random", format="card")
    ctx = await ctx_for(keyring, t, card)
    a, b = t.apply("x@y.example", ctx), t.apply("x@y.example", ctx)
    assert a != b and a.startswith("tok_")
    assert len(ctx.vault_entries) == 2
    c1, c2 = card.apply(CARD, ctx), card.apply(CARD, ctx)
    assert c1 != c2 and c1[-4:] == CARD[-4:]
    assert not luhn_valid(c1.replace(" ", ""))


CARD = "4111 1111 1111 1111"


async def test_card_tokens_never_trip_the_dlp_scan(keyring: KeyRing) -> None:
    """A token is forwarded: no layout of it may read as a card or a phone number
    (a token starting 00 once read as an international number)."""
    from zoneapp.dlp import BUILTIN_DETECTORS, build_scanner

    scanner = build_scanner(list(BUILTIN_DETECTORS), [])
    t = make("tokenize", format="card")
    ctx = await ctx_for(keyring, t)
    for layout in ("4111 1111 1111 {n:04d}", "3782 8224{n:02d} 10005", "4111111111{n:06d}"):
        for n in range(1500):
            token = t.apply(layout.format(n=n % 10**6), ctx)
            assert scanner.scan([("card_number", token)]) == [], token


def test_compact_card_tokens_need_no_detector_call() -> None:
    """card_token skips CREDIT_CARD and PHONE on a compact token that fails Luhn and does
    not start with 00: both must then find nothing (what the shortcut relies on)."""
    import random

    from zoneapp.dlp.credit_card import holds_card
    from zoneapp.transforms.keyed import _PHONE

    rng = random.Random(7)
    prefixes = ["", "0", "01", "1", "4", "5", "6011", "34", "37", "62", "81", "9792", "2221"]
    checked = 0
    while checked < 5000:
        digits = rng.choice(prefixes) + "".join(rng.choices("0123456789", k=19))
        token = digits[: rng.randint(12, 19)]
        if luhn_valid(token) or token.startswith("00"):
            continue
        checked += 1
        assert not holds_card(token), token
        assert not _PHONE.find(token, "", ()), token


def test_card_token_layouts_agree_with_the_detectors() -> None:
    """card_token decides from the input's layout which detector calls a grouped token
    needs: CREDIT_CARD's verdict must be the detector's, and where the layout says
    PHONE finds nothing, PHONE must find nothing."""
    import random

    from zoneapp.dlp.credit_card import holds_card
    from zoneapp.transforms.keyed import _GROUPS, _PHONE, _laid_out, _Layout

    rng = random.Random(11)
    seps = [" ", "-", "  ", " - ", "--", " " * 8, " " * 9, "-" * 10]
    shapes = [[4, 4, 4, 4], [4, 6, 5], [3, 3, 4, 3], [1, 3, 3, 4, 2], [4, 2, 2, 8], [2, 2, 4, 6]]
    skipped = 0
    for n in range(20000):
        if n % 3 == 0:
            sizes = rng.choice(shapes)
        else:
            sizes = []
            while sum(sizes) < 12:
                sizes.append(rng.randint(1, 7))
        groups = ["".join(rng.choices("0123456789", k=k)) for k in sizes]
        if rng.random() < 0.2:
            groups[0] = "00" + groups[0][2:]
        text = groups[0]
        for group in groups[1:]:
            text += rng.choice(seps) + group
        if rng.random() < 0.1:
            text = rng.choice(seps) + text + rng.choice(seps)
        layout = _Layout(_GROUPS.findall(text))
        digits = "".join(groups)
        assert _laid_out(digits, layout.parts) == text
        for run in layout.card_runs:  # CREDIT_CARD's runs, as the detector cuts them
            assert run[-1][1] - run[0][0] >= 12
        token = layout.token(digits)
        cards = holds_card(text)
        phone = _PHONE.find(text, "", ())
        assert (token is None) == (cards or phone), text
        needs_phone = layout.phone_always or any(
            digits.startswith("00", at) for at in layout.zero_starts
        )
        if not needs_phone:
            skipped += 1
            assert not phone, text
    assert skipped > 5000  # the shortcut is taken, and was checked
