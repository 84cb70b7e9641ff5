"""KeyRing envelope encryption on the in-memory provider (real AES-GCM, real HMAC)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os

import pytest

from zoneapp.keys import (
    CIPHERTEXT_PREFIX,
    CIPHERTEXT_PREFIX_V1,
    Aad,
    DecryptionError,
    KeyProviderError,
    KeyRing,
    KeyRingNotPreparedError,
    KeyUnavailableError,
    MemoryKeyProvider,
    MemoryKeyStore,
    Purpose,
    UnknownKeyVersionError,
    ZoneNotPermittedError,
    is_ciphertext,
    parse_ciphertext_header,
)
from zoneapp.keys.envelope import HmacSha256, dek_aad
from zoneapp.keys.wrappers import CountingKeyProvider, KeyProviderWrapper, runtime_stack

CONF = "confidential"
RESTR = "restricted"
TENANT = "acme"
AAD = Aad.field(TENANT, "orders.v1", "customer.card")


#: Offset of the KEK version in a V2 ciphertext of AAD's tenant: version, purpose, zone, tenant.
def kek_offset(zone: str, tenant: str = TENANT) -> int:
    return 3 + len(zone) + 2 + len(tenant.encode())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store() -> MemoryKeyStore:
    store = MemoryKeyStore()
    await MemoryKeyProvider(store).provision([CONF, RESTR, "internal"])
    return store


async def make_ring(
    store: MemoryKeyStore, zones: tuple[str, ...] = (CONF, RESTR), **kwargs: object
) -> KeyRing:
    """A worker's ring: the memory back end in the runtime stack (gate, retry, counting)."""
    provider = runtime_stack(MemoryKeyProvider(store))
    await provider.open(zones)
    return KeyRing(provider, zones, **kwargs)  # type: ignore[arg-type]


def hsm_calls(ring: KeyRing) -> int:
    """Key operations the ring's provider stack sent to the store (its counting wrapper)."""
    provider = ring._provider
    while not isinstance(provider, CountingKeyProvider):
        assert isinstance(provider, KeyProviderWrapper)
        provider = provider.inner
    return provider.hsm_calls


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_roundtrip(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    await ring.prepare()
    for plaintext in (b"", b"4111111111111111", "Zoë 😀".encode(), os.urandom(70_000)):
        ct = ring.encrypt(CONF, plaintext, AAD)
        assert await ring.decrypt(ct, AAD) == plaintext
    c1, c2 = ring.encrypt(CONF, b"same", AAD), ring.encrypt(CONF, b"same", AAD)
    assert c1 != c2  # random nonce


async def test_format(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    await ring.prepare()
    ct = ring.encrypt(RESTR, b"123-45-6789", AAD)
    assert ct.startswith(CIPHERTEXT_PREFIX) and CIPHERTEXT_PREFIX == "zenc2."
    body = ct[len(CIPHERTEXT_PREFIX) :]
    assert set(body) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = b64decode(body)
    zone = RESTR.encode()
    assert raw[0] == 2 and raw[1] == Purpose.FIELD and raw[2] == len(zone)
    assert raw[3 : 3 + len(zone)] == zone
    off = 3 + len(zone)
    assert int.from_bytes(raw[off : off + 2], "big") == 4 and raw[off + 2 : off + 6] == b"acme"
    off = kek_offset(RESTR)
    assert int.from_bytes(raw[off : off + 4], "big") == 1
    wrapped_len = int.from_bytes(raw[off + 4 : off + 6], "big")
    assert wrapped_len == 60
    header_len = off + 6 + wrapped_len
    assert len(raw) == header_len + 12 + len(b"123-45-6789") + 16
    header = parse_ciphertext_header(ct)
    assert (header.format_version, header.zone, header.kek_version) == (2, RESTR, 1)
    assert (header.purpose, header.tenant) == (Purpose.FIELD, TENANT)
    assert is_ciphertext(ct)
    for junk in (
        "",
        "zenc2.",
        "zenc2.!!!",
        "4111111111111111",
        ct[:-30],
        "zenc1." + body,  # a V2 body under the V1 prefix
        "zenc3." + body,
        ct + "!",
    ):
        assert not is_ciphertext(junk)


async def test_v1_still_decrypts_in_its_legacy_context(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    await ring.prepare()
    legacy = ring.encrypt_legacy_v1(CONF, b"old data", b"orders.v1|customer.card")
    assert legacy.startswith(CIPHERTEXT_PREFIX_V1) and is_ciphertext(legacy)
    header = parse_ciphertext_header(legacy)
    assert (header.format_version, header.purpose, header.tenant) == (1, None, None)
    raw = b64decode(legacy[len(CIPHERTEXT_PREFIX_V1) :])
    assert raw[0] == 1 and raw[1] == len(CONF)  # the V1 layout, unchanged
    # V1 names no tenant: it opens under its topic|path whatever tenant the reader names.
    assert await ring.decrypt(legacy, AAD) == b"old data"
    assert await ring.decrypt(legacy, Aad.field("", "orders.v1", "customer.card")) == b"old data"
    for other in (
        Aad.field(TENANT, "orders.v1", "customer.email"),
        Aad.field(TENANT, "orders.v2", "customer.card"),
    ):
        with pytest.raises(DecryptionError):
            await ring.decrypt(legacy, other)
    fresh = await make_ring(store)  # another worker, no cached data key
    assert await fresh.decrypt(legacy, AAD) == b"old data"


async def test_v1_vault_and_subject_keys_never_open_as_fields(store: MemoryKeyStore) -> None:
    """The issue-8 attack on V1: topic=zoneapp/vault/v1, field=tenant\x1fclass\x1ftoken."""
    ring = await make_ring(store)
    await ring.prepare()
    vault = Aad.vault("globex", "card", "tok_abc")
    skey = Aad.subject_key("globex", "subjecthash")
    assert vault.legacy is not None and skey.legacy is not None
    v1_vault = ring.encrypt_legacy_v1(CONF, b"4111111111111111", vault.legacy)
    v1_skey = ring.encrypt_legacy_v1(CONF, b"k" * 32, skey.legacy)
    assert await ring.decrypt(v1_vault, vault) == b"4111111111111111"
    assert await ring.decrypt(v1_skey, skey) == b"k" * 32
    for ct, topic, field in (
        (v1_vault, "zoneapp/vault/v1", "globex\x1fcard\x1ftok_abc"),
        (v1_skey, "zoneapp/skey/v1", "globex\x1fsubjecthash"),
    ):
        as_field = Aad.field("globex", topic, field)
        assert as_field.legacy is None  # not a Kafka topic name: no V1 field context
        with pytest.raises(DecryptionError):
            await ring.decrypt(ct, as_field)


async def test_purposes_are_separate_domains(store: MemoryKeyStore) -> None:
    """A V2 vault entry or subject key never opens as a field, whatever topic and field."""
    ring = await make_ring(store)
    await ring.prepare()
    vault = Aad.vault("globex", "card", "tok_abc")
    skey = Aad.subject_key("globex", "subjecthash")
    ct_vault = ring.encrypt(CONF, b"4111111111111111", vault)
    ct_skey = ring.encrypt(CONF, b"k" * 32, skey)
    assert parse_ciphertext_header(ct_vault).purpose is Purpose.VAULT
    assert parse_ciphertext_header(ct_skey).purpose is Purpose.SUBJECT_KEY
    attempts = [
        Aad.field("globex", "zoneapp/vault/v1", "globex\x1fcard\x1ftok_abc"),
        Aad.field("globex", "zoneapp/vault/v2", "card\x1ftok_abc"),
        Aad.field("globex", "card", "tok_abc"),
        Aad.field("globex", "zoneapp/skey/v1", "globex\x1fsubjecthash"),
        Aad.subject_key("globex", "tok_abc"),
        Aad.vault("globex", "subjecthash", ""),
    ]
    for ct in (ct_vault, ct_skey):
        for aad in attempts:
            with pytest.raises(DecryptionError):
                await ring.decrypt(ct, aad)
    # The encodings themselves differ: no parts can reproduce another domain's bytes.
    assert Aad.field("t", "a", "b").encode() != Aad.vault("t", "a", "b").encode()
    assert Aad.field("t", "a\x00\x00\x00\x01b", "").encode() != Aad.field("t", "a", "b").encode()


async def test_tenant_is_bound(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    await ring.prepare()
    ct = ring.encrypt(CONF, b"globex phone", Aad.field("globex", "orders.v1", "customer.phone"))
    assert parse_ciphertext_header(ct).tenant == "globex"
    with pytest.raises(DecryptionError):
        await ring.decrypt(ct, Aad.field("acme", "orders.v1", "customer.phone"))
    # Rewriting the tenant in the header (same length) fails authentication.
    raw = b64decode(ct[len(CIPHERTEXT_PREFIX) :]).replace(b"globex", b"acmeco", 1)
    forged = CIPHERTEXT_PREFIX + b64encode(raw)
    assert parse_ciphertext_header(forged).tenant == "acmeco"
    with pytest.raises(DecryptionError):
        await ring.decrypt(forged, Aad.field("acmeco", "orders.v1", "customer.phone"))
    assert await ring.decrypt(ct, Aad.field("globex", "orders.v1", "customer.phone"))


async def test_field_and_topic_binding(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    await ring.prepare()
    ct = ring.encrypt(CONF, b"secret", AAD)
    for other in (
        Aad.field(TENANT, "orders.v1", "customer.email"),
        Aad.field(TENANT, "payments.v1", "customer.card"),
        Aad.field(TENANT, "", ""),
        Aad.field(TENANT, "orders.v1|customer.card", ""),
        Aad.field("", "orders.v1", "customer.card"),
    ):
        with pytest.raises(
            DecryptionError, match="tampered ciphertext or wrong field/topic binding"
        ):
            await ring.decrypt(ct, other)


async def test_tampering_any_byte_fails(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    await ring.prepare()
    ct = ring.encrypt(CONF, b"4111111111111111", AAD)
    raw = b64decode(ct[len(CIPHERTEXT_PREFIX) :])
    header_len = len(raw) - 12 - 16 - 16
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x04
        bad = CIPHERTEXT_PREFIX + b64encode(bytes(tampered))
        with pytest.raises(KeyProviderError) as info:
            await ring.decrypt(bad, AAD)
        if i >= kek_offset(CONF) + 6:  # wrapped DEK, nonce, ciphertext, tag
            assert isinstance(info.value, DecryptionError), i
        elif i >= kek_offset(CONF):  # kek_version / wrapped_len
            assert isinstance(info.value, (DecryptionError, UnknownKeyVersionError)), i
    assert header_len > 0
    # Every single-character change of the text form fails too (incl. non-canonical base64).
    alphabet = "AQgw_-9"
    for i in range(len(CIPHERTEXT_PREFIX), len(ct)):
        for c in alphabet:
            if c == ct[i]:
                continue
            with pytest.raises(KeyProviderError):
                await ring.decrypt(ct[:i] + c + ct[i + 1 :], AAD)
    for bad_text in (
        ct[:-1],
        ct + "A",
        ct.replace("zenc2.", "zenc2:"),
        ct.replace("zenc2.", "zenc1."),
        ct[: len(CIPHERTEXT_PREFIX)],
    ):
        with pytest.raises(DecryptionError):
            await ring.decrypt(bad_text, AAD)
    assert await ring.decrypt(ct, AAD) == b"4111111111111111"


async def test_header_moved_to_other_zone_fails(store: MemoryKeyStore) -> None:
    # Relabel a restricted ciphertext as confidential (same length zone names so offsets fit).
    await MemoryKeyProvider(store).provision(["zone-aa", "zone-bb"])
    ring = await make_ring(store, ("zone-aa", "zone-bb"))
    await ring.prepare()
    ct = ring.encrypt("zone-aa", b"x", AAD)
    raw = b64decode(ct[len(CIPHERTEXT_PREFIX) :]).replace(b"zone-aa", b"zone-bb", 1)
    with pytest.raises(DecryptionError):
        await ring.decrypt(CIPHERTEXT_PREFIX + b64encode(raw), AAD)
    # A fresh ring (no cached DEK) fails inside the key store, on the DEK's own AAD binding.
    fresh = await make_ring(store, ("zone-aa", "zone-bb"))
    with pytest.raises(DecryptionError):
        await fresh.decrypt(CIPHERTEXT_PREFIX + b64encode(raw), AAD)


async def test_two_workers_share_a_store(store: MemoryKeyStore) -> None:
    a, b = await make_ring(store), await make_ring(store)
    await a.prepare()
    await b.prepare()
    ca, cb = a.encrypt(CONF, b"from a", AAD), b.encrypt(CONF, b"from b", AAD)
    assert await b.decrypt(ca, AAD) == b"from a"
    assert await a.decrypt(cb, AAD) == b"from b"


async def test_lower_zone_worker_cannot_decrypt_higher_zone(store: MemoryKeyStore) -> None:
    higher = await make_ring(store, (CONF, RESTR))
    await higher.prepare()
    ct = higher.encrypt(RESTR, b"restricted data", AAD)
    lower = await make_ring(store, (CONF,))
    await lower.prepare()
    calls = hsm_calls(lower)
    with pytest.raises(ZoneNotPermittedError):
        await lower.decrypt(ct, AAD)
    with pytest.raises(ZoneNotPermittedError):
        lower.encrypt(RESTR, b"x", AAD)
    assert hsm_calls(lower) == calls
    # Even a KeyRing configured with the zone fails when its provider did not open it.
    sneaky = KeyRing(lower._provider, (CONF, RESTR))
    with pytest.raises(ZoneNotPermittedError):
        await sneaky.decrypt(ct, AAD)


async def test_dek_reuse_100k_encrypts_cost_two_hsm_calls(store: MemoryKeyStore) -> None:
    clock = FakeClock()
    ring = await make_ring(store, (CONF,), clock=clock)
    for _batch in range(100):
        await ring.prepare()
        for _ in range(1000):
            ring.encrypt(CONF, b"4111111111111111", AAD)
        clock.now += 0.5  # 50 s in total: inside the version check interval
    stats = ring.stats
    assert stats["encryptions"] == 100_000
    assert stats["deks_created"] == 1
    assert hsm_calls(ring) == 2  # one version lookup + one wrap


async def test_steady_state_prepare_costs_nothing(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    ring.require_hmac(CONF, "email")
    await ring.prepare()
    calls = hsm_calls(ring)
    for _ in range(10):
        await ring.prepare()
    assert hsm_calls(ring) == calls


async def test_use_budget_exhaustion_creates_new_dek(store: MemoryKeyStore) -> None:
    clock = FakeClock()
    ring = await make_ring(store, (CONF,), dek_max_uses=10, clock=clock)
    await ring.prepare()
    first = [ring.encrypt(CONF, b"a", AAD) for _ in range(10)]
    calls = hsm_calls(ring)
    await ring.prepare()
    assert ring.stats["deks_created"] == 2
    assert hsm_calls(ring) == calls + 1  # one wrap, version check not due
    second = ring.encrypt(CONF, b"b", AAD)
    end = kek_offset(CONF) + 6 + 60
    wrapped = {b64decode(c[6:])[:end] for c in first}
    assert len(wrapped) == 1 and b64decode(second[6:])[:end] not in wrapped
    for ct in [*first, second]:
        await ring.decrypt(ct, AAD)


async def test_age_limit_creates_new_dek(store: MemoryKeyStore) -> None:
    clock = FakeClock()
    ring = await make_ring(
        store, (CONF,), dek_max_age=3600, version_check_interval=1e9, clock=clock
    )
    await ring.prepare()
    clock.now += 3599
    await ring.prepare()
    assert ring.stats["deks_created"] == 1
    clock.now += 1
    await ring.prepare()
    assert ring.stats["deks_created"] == 2


async def test_rotation_by_another_process_is_picked_up(store: MemoryKeyStore) -> None:
    clock = FakeClock()
    ring = await make_ring(store, (CONF,), version_check_interval=60, clock=clock)
    await ring.prepare()
    before = ring.encrypt(CONF, b"old", AAD)

    admin = MemoryKeyProvider(store)
    assert await admin.rotate_kek(CONF) == 2

    clock.now += 59
    await ring.prepare()
    assert parse_ciphertext_header(ring.encrypt(CONF, b"x", AAD)).kek_version == 1
    clock.now += 1
    await ring.prepare()
    after = ring.encrypt(CONF, b"new", AAD)
    assert parse_ciphertext_header(after).kek_version == 2
    assert ring.stats["deks_created"] == 2

    other = await make_ring(store, (CONF,))  # a worker that never saw v1 as current
    assert await other.decrypt(before, AAD) == b"old"
    assert await other.decrypt(after, AAD) == b"new"


async def test_decrypt_cache_avoids_repeat_unwraps(store: MemoryKeyStore) -> None:
    producer = await make_ring(store)
    await producer.prepare()
    cts = [producer.encrypt(CONF, str(i).encode(), AAD) for i in range(100)]
    consumer = await make_ring(store)
    start = hsm_calls(consumer)
    for i, ct in enumerate(cts):
        assert await consumer.decrypt(ct, AAD) == str(i).encode()
    assert hsm_calls(consumer) - start == 1  # one unwrap (its KEK lookup is part of it)
    assert consumer.stats["unwraps"] == 1 and consumer.stats["dek_cache_hits"] == 99
    # The producer decrypts its own output without any HSM call.
    calls = hsm_calls(producer)
    await producer.decrypt(cts[0], AAD)
    assert hsm_calls(producer) == calls


async def test_decrypt_cache_is_bounded(store: MemoryKeyStore) -> None:
    producers = [await make_ring(store, (CONF,)) for _ in range(3)]
    cts = []
    for p in producers:
        await p.prepare()
        cts.append(p.encrypt(CONF, b"x", AAD))
    consumer = await make_ring(store, (CONF,), decrypt_cache_size=2)
    for ct in cts:
        await consumer.decrypt(ct, AAD)
    assert consumer.stats["unwraps"] == 3
    await consumer.decrypt(cts[2], AAD)
    assert consumer.stats["unwraps"] == 3
    await consumer.decrypt(cts[0], AAD)  # evicted
    assert consumer.stats["unwraps"] == 4


async def test_concurrent_decrypts_share_one_unwrap(store: MemoryKeyStore) -> None:
    producer = await make_ring(store)
    await producer.prepare()
    cts = [producer.encrypt(CONF, b"%d" % i, AAD) for i in range(50)]
    consumer = await make_ring(store)
    results = await asyncio.gather(*(consumer.decrypt(ct, AAD) for ct in cts))
    assert results == [b"%d" % i for i in range(50)]
    assert consumer.stats["unwraps"] == 1


async def test_hmac_working_keys(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    with pytest.raises(KeyRingNotPreparedError, match="require_hmac"):
        ring.hmac_key(CONF, "email")
    ring.require_hmac(CONF, "email")
    with pytest.raises(KeyRingNotPreparedError, match="prepare"):
        ring.hmac_key(CONF, "email")
    await ring.prepare()
    key = ring.hmac_key(CONF, "email")
    provider = MemoryKeyProvider(store)
    await provider.open([CONF])
    assert key == await provider.derive_hmac_key(CONF, b"zoneapp/hmac/v1/email")
    other = await make_ring(store)
    other.require_hmac(CONF, "email")
    other.require_hmac(RESTR, "email")
    await other.prepare()
    assert other.hmac_key(CONF, "email") == key  # same on every worker
    assert other.hmac_key(RESTR, "email") != key
    with pytest.raises(ZoneNotPermittedError):
        ring.require_hmac("internal", "email")
    # Usable as a plain HMAC key (e.g. deterministic pseudonyms).
    assert len(hmac.new(key, b"alice@example.com", hashlib.sha256).digest()) == 32


@pytest.mark.parametrize("key_size", [0, 1, 32, 63, 64, 65, 200])
def test_keyed_hmac_gives_the_bytes_of_hmac_digest(key_size: int) -> None:
    key = os.urandom(key_size)
    mac = HmacSha256(key)
    for message in (b"", b"acme\x1femail\x1falice@example.com", os.urandom(1000)):
        assert mac.digest(message) == hmac.digest(key, message, "sha256")
    assert not key or key.hex() not in repr(mac)


async def test_keyring_hmac_is_the_working_key_keyed_once(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    with pytest.raises(KeyRingNotPreparedError, match="require_hmac"):
        ring.hmac(CONF, "email")
    ring.require_hmac(CONF, "email")
    with pytest.raises(KeyRingNotPreparedError, match="prepare"):
        ring.hmac(CONF, "email")
    await ring.prepare()
    mac = ring.hmac(CONF, "email")
    assert mac is ring.hmac(CONF, "email")
    assert mac.digest(b"x") == hmac.digest(ring.hmac_key(CONF, "email"), b"x", "sha256")
    with pytest.raises(ZoneNotPermittedError):
        ring.hmac("internal", "email")


async def test_not_prepared_errors(store: MemoryKeyStore) -> None:
    ring = await make_ring(store, (CONF,))
    with pytest.raises(KeyRingNotPreparedError, match="prepare"):
        ring.encrypt(CONF, b"x", AAD)
    with pytest.raises(ZoneNotPermittedError):
        ring.encrypt(RESTR, b"x", AAD)


async def test_fail_closed_when_store_unavailable(store: MemoryKeyStore) -> None:
    clock = FakeClock()
    ring = await make_ring(store, (CONF,), dek_max_uses=5, clock=clock)
    producer = await make_ring(store, (CONF,))
    await producer.prepare()
    foreign = producer.encrypt(CONF, b"x", AAD)

    store.available = False
    cold = KeyRing(ring._provider, (CONF,), clock=clock)
    with pytest.raises(KeyUnavailableError):
        await cold.prepare()  # no data key without the store
    with pytest.raises(KeyUnavailableError):
        await ring.decrypt(foreign, AAD)  # uncached DEK needs an unwrap

    store.available = True
    await ring.prepare()
    store.available = False
    clock.now += 3600  # version check due but the store is down: the valid DEK carries on
    await ring.prepare()
    assert ring.stats["version_check_failures"] == 1
    ct = ring.encrypt(CONF, b"still works", AAD)
    assert await ring.decrypt(ct, AAD) == b"still works"
    for _ in range(4):
        ring.encrypt(CONF, b"y", AAD)
    with pytest.raises(KeyUnavailableError):
        await ring.prepare()  # budget used up: a new DEK needs the store
    store.available = True
    await ring.prepare()
    assert ring.stats["deks_created"] == 2


async def test_unknown_kek_version_in_ciphertext(store: MemoryKeyStore) -> None:
    ring = await make_ring(store, (CONF,))
    await ring.prepare()
    raw = bytearray(b64decode(ring.encrypt(CONF, b"x", AAD)[6:]))
    raw[kek_offset(CONF) : kek_offset(CONF) + 4] = (7).to_bytes(4, "big")
    fresh = await make_ring(store, (CONF,))
    with pytest.raises(UnknownKeyVersionError):
        await fresh.decrypt(CIPHERTEXT_PREFIX + b64encode(bytes(raw)), AAD)


async def test_no_key_material_in_repr_or_errors(store: MemoryKeyStore) -> None:
    ring = await make_ring(store)
    ring.require_hmac(CONF, "email")
    await ring.prepare()
    key = ring.hmac_key(CONF, "email")
    ct = ring.encrypt(CONF, b"x", AAD)
    texts = [repr(ring), repr(ring._provider), repr(store), str(ring.stats)]
    with pytest.raises(DecryptionError) as info:
        await ring.decrypt(ct, Aad.field(TENANT, "other", "x"))
    texts.append(str(info.value))
    for text in texts:
        assert key.hex() not in text and repr(key) not in text
        assert "AESGCM" not in text


def test_dek_aad() -> None:
    assert dek_aad("confidential", 12) == b"zoneapp/dek/v1|confidential|12"
