"""PKCS#11-only behaviour on a real SoftHSM2 token: object attributes, reconnects, races
(what the shared key contract in test_key_provider.py cannot express for memory too)."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from tests.contract.conftest import USER_PIN, SoftHsmToken
from zoneapp.keys import (
    KeyCalls,
    KeyRing,
    KeyUnavailableError,
    Secret,
)
from zoneapp.keys.base import hmac_label, kek_label
from zoneapp.keys.envelope import Aad, dek_aad
from zoneapp.keys.pkcs11 import Pkcs11KeyProvider, _token_login
from zoneapp.keys.wrappers import CountingKeyProvider


@pytest.fixture
def zone() -> str:
    return f"restricted-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def provider(softhsm_token: SoftHsmToken, zone: str) -> AsyncIterator[Pkcs11KeyProvider]:
    p = Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    await p.provision([zone])
    await p.open([zone])
    yield p
    await p.close()


def raw_session(token: SoftHsmToken) -> Any:
    """A no-PIN session; sees private objects while a provider holds the login."""
    return pkcs11.lib(token.module).get_token(token_label=token.label).open(rw=True)


async def test_hmac_key_object_attributes(
    provider: Pkcs11KeyProvider, softhsm_token: SoftHsmToken, zone: str
) -> None:
    session = raw_session(softhsm_token)
    try:
        key = session.get_key(ObjectClass.SECRET_KEY, label=hmac_label(zone))
        attrs = key.get_attributes(
            [
                Attribute.KEY_TYPE,
                Attribute.VALUE_LEN,
                Attribute.SENSITIVE,
                Attribute.EXTRACTABLE,
                Attribute.PRIVATE,
                Attribute.SIGN,
                Attribute.ENCRYPT,
                Attribute.DERIVE,
            ]
        )
        assert attrs[Attribute.KEY_TYPE] == KeyType.GENERIC_SECRET
        assert attrs[Attribute.VALUE_LEN] == 32
        assert attrs[Attribute.SENSITIVE] and not attrs[Attribute.EXTRACTABLE]
        assert attrs[Attribute.PRIVATE] and attrs[Attribute.SIGN]
        assert not attrs[Attribute.ENCRYPT] and not attrs[Attribute.DERIVE]
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.VALUE]
        # Not even wrappable out by another key on the token.
        wrapper = session.generate_key(KeyType.AES, 256, store=False)
        kek = session.get_key(ObjectClass.SECRET_KEY, label=kek_label(zone, 1))
        with pytest.raises(pkcs11.exceptions.PKCS11Error):
            wrapper.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP)
    finally:
        session.close()


async def test_private_objects_invisible_without_login(softhsm_token: SoftHsmToken) -> None:
    # Sanity check of the premise above: with no provider open, nothing is visible.
    assert _token_login(softhsm_token.module, softhsm_token.label).holder is None
    session = raw_session(softhsm_token)
    try:
        assert list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})) == []
    finally:
        session.close()


async def test_calls_run_in_the_executor_thread(
    provider: Pkcs11KeyProvider, zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = provider._connect

    def spy() -> Any:
        seen.append(threading.current_thread().name)
        return original()

    monkeypatch.setattr(provider, "_connect", spy)
    await provider.current_kek_version(zone)
    await provider.wrap_dek(zone, 1, os.urandom(32), dek_aad(zone, 1))
    assert seen and all(name.startswith("zoneapp-pkcs11") for name in seen)
    assert threading.current_thread().name not in seen


async def test_reconnects_after_session_loss(
    provider: Pkcs11KeyProvider,
    softhsm_token: SoftHsmToken,
    zone: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dek = os.urandom(32)
    wrapped = await provider.wrap_dek(zone, 1, dek, dek_aad(zone, 1))
    # C_Finalize + C_Initialize: every session and the login are gone (like an HSM restart).
    pkcs11.lib(softhsm_token.module).reinitialize()
    with caplog.at_level(logging.DEBUG):
        assert await provider.unwrap_dek(zone, 1, wrapped, dek_aad(zone, 1)) == dek
        assert await provider.current_kek_version(zone) == 1
    assert "retrying" in caplog.text
    assert USER_PIN not in caplog.text


async def test_two_providers_share_the_login(softhsm_token: SoftHsmToken, zone: str) -> None:
    login = _token_login(softhsm_token.module, softhsm_token.label)
    a = Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    b = Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, Secret(USER_PIN))
    await a.provision([zone])
    assert login.holder is None  # admin call without open() logs out again
    await a.open([zone])
    await b.open([zone])
    assert login.leases == 2
    await a.close()  # must not log b out
    assert await b.current_kek_version(zone) == 1
    await b.close()
    assert login.holder is None and login.leases == 0


async def test_duplicate_labels_from_a_provisioning_race(
    provider: Pkcs11KeyProvider, softhsm_token: SoftHsmToken, zone: str
) -> None:
    # A second process raced us and created another "v2" object with the same label.
    await provider.rotate_kek(zone)
    session = raw_session(softhsm_token)
    try:
        twin = session.generate_key(
            KeyType.AES,
            256,
            label=kek_label(zone, 2),
            id=b"\xff" * 16,  # sorts after the provider's random id... almost surely
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
            },
        )
        dek = os.urandom(32)
        nonce = os.urandom(12)
        params = pkcs11.GCMParams(nonce, dek_aad(zone, 2), 128)
        by_twin = nonce + twin.encrypt(dek, mechanism=Mechanism.AES_GCM, mechanism_param=params)
    finally:
        session.close()
    fresh = Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    await fresh.open([zone])
    try:
        assert await fresh.current_kek_version(zone) == 2
        # DEKs wrapped under either object unwrap.
        assert await fresh.unwrap_dek(zone, 2, by_twin, dek_aad(zone, 2)) == dek
        ours = await provider.wrap_dek(zone, 2, dek, dek_aad(zone, 2))
        assert await fresh.unwrap_dek(zone, 2, ours, dek_aad(zone, 2)) == dek
    finally:
        await fresh.close()


async def test_keyring_on_softhsm(provider: Pkcs11KeyProvider, zone: str) -> None:
    calls = KeyCalls()
    ring = KeyRing(CountingKeyProvider(provider, calls), [zone])
    ring.require_hmac(zone, "email")
    await ring.prepare()
    assert calls.by_operation == {"version": 1, "wrap": 1, "derive": 1}
    cts = [
        ring.encrypt(zone, b"4111111111111111", Aad.field("acme", "t", "f")) for _ in range(1000)
    ]
    await ring.prepare()
    assert calls.total == 3  # steady state: nothing sent to the HSM
    other = KeyRing(provider, [zone])
    for ct in cts:
        assert await other.decrypt(ct, Aad.field("acme", "t", "f")) == b"4111111111111111"
    assert other.stats["unwraps"] == 1
    assert len(ring.hmac_key(zone, "email")) == 32


async def test_missing_module_is_key_unavailable(zone: str) -> None:
    p = Pkcs11KeyProvider("/nonexistent/libpkcs11.so", "zoneapp", Secret(USER_PIN))
    with pytest.raises(KeyUnavailableError, match="cannot load PKCS#11 module"):
        await p.open([zone])
    await p.close()


def test_pin_must_be_a_secret(softhsm_token: SoftHsmToken) -> None:
    with pytest.raises(TypeError):
        Pkcs11KeyProvider(softhsm_token.module, softhsm_token.label, USER_PIN)  # type: ignore[arg-type]
