"""Fixtures for the key-management tests: one SoftHSM2 token per test session.

The token lives in a pytest tmp dir with its own SOFTHSM2_CONF (set before the
module is loaded or re-initialised). Tests stay isolated by using fresh zone names.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zoneapp.keys import KeyProvider, MemoryKeyProvider, MemoryKeyStore, Secret
from zoneapp.keys.base import kek_label
from zoneapp.keys.pkcs11 import Pkcs11KeyProvider
from zoneapp.stack.softhsm import activate_softhsm_env, find_softhsm_module, init_softhsm_token

# Distinctive values so a leak into a message or repr is easy to spot.
USER_PIN = "pin-4417-unit"
SO_PIN = "so-pin-9902-unit"
WRONG_PIN = "wrong-pin-5530"
TOKEN_LABEL = "zoneapp-unit"


@dataclass(frozen=True)
class SoftHsmToken:
    module: str
    label: str
    pin: Secret
    env: dict[str, str]


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    """A fresh SoftHSM2 token for the whole test session (skips if SoftHSM is missing)."""
    module = find_softhsm_module()
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed")
    env = init_softhsm_token(tmp_path_factory.mktemp("softhsm"), TOKEN_LABEL, USER_PIN, SO_PIN)
    previous = os.environ.get("SOFTHSM2_CONF")
    activate_softhsm_env(env, module)
    yield SoftHsmToken(module=module, label=TOKEN_LABEL, pin=Secret(USER_PIN), env=env)
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


class Backend:
    """How the contract suite builds providers on one shared store/token."""

    name: str

    def provider(self, pin: Secret | None = None) -> KeyProvider:
        raise NotImplementedError

    def wrong_pin_provider(self) -> KeyProvider:
        return self.provider(Secret(WRONG_PIN))

    def unreachable_provider(self) -> KeyProvider:
        raise NotImplementedError

    def assert_kek_not_extractable(self, zone: str, version: int) -> None:
        raise NotImplementedError


class MemoryBackend(Backend):
    name = "memory"

    def __init__(self) -> None:
        self.store = MemoryKeyStore(pin=Secret(USER_PIN))

    def provider(self, pin: Secret | None = None) -> KeyProvider:
        return MemoryKeyProvider(self.store, pin=pin or Secret(USER_PIN))

    def unreachable_provider(self) -> KeyProvider:
        store = MemoryKeyStore()
        store.available = False
        return MemoryKeyProvider(store)

    def assert_kek_not_extractable(self, zone: str, version: int) -> None:
        # KEKs exist only inside AESGCM objects; no API of the store or provider returns them.
        kek = self.store._kek(zone, version)
        assert isinstance(kek, AESGCM)
        public = [n for n in dir(self.store) if not n.startswith("_")]
        assert public == ["available"]


class Pkcs11Backend(Backend):
    name = "pkcs11"

    def __init__(self, token: SoftHsmToken) -> None:
        self.token = token

    def provider(self, pin: Secret | None = None) -> KeyProvider:
        return Pkcs11KeyProvider(self.token.module, self.token.label, pin or self.token.pin)

    def unreachable_provider(self) -> KeyProvider:
        return Pkcs11KeyProvider(self.token.module, "no-such-token", self.token.pin)

    def assert_kek_not_extractable(self, zone: str, version: int) -> None:
        import pkcs11
        from pkcs11 import Attribute, ObjectClass
        from pkcs11 import exceptions as p11e

        # Runs while a provider of the test holds the process-wide login, so a
        # no-PIN session sees the private key objects.
        lib = pkcs11.lib(self.token.module)
        session = lib.get_token(token_label=self.token.label).open()
        try:
            key = session.get_key(ObjectClass.SECRET_KEY, label=kek_label(zone, version))
            attrs = key.get_attributes(
                [
                    Attribute.TOKEN,
                    Attribute.PRIVATE,
                    Attribute.SENSITIVE,
                    Attribute.EXTRACTABLE,
                    Attribute.ALWAYS_SENSITIVE,
                    Attribute.NEVER_EXTRACTABLE,
                    Attribute.ENCRYPT,
                    Attribute.DECRYPT,
                    Attribute.WRAP,
                    Attribute.UNWRAP,
                    Attribute.SIGN,
                    Attribute.DERIVE,
                    Attribute.VALUE_LEN,
                ]
            )
            assert attrs[Attribute.TOKEN] and attrs[Attribute.PRIVATE]
            assert attrs[Attribute.SENSITIVE] and attrs[Attribute.ALWAYS_SENSITIVE]
            assert not attrs[Attribute.EXTRACTABLE] and attrs[Attribute.NEVER_EXTRACTABLE]
            assert attrs[Attribute.ENCRYPT] and attrs[Attribute.DECRYPT]
            assert not (attrs[Attribute.WRAP] or attrs[Attribute.UNWRAP])
            assert not (attrs[Attribute.SIGN] or attrs[Attribute.DERIVE])
            assert attrs[Attribute.VALUE_LEN] == 32
            with pytest.raises(p11e.AttributeSensitive):
                key[Attribute.VALUE]
        finally:
            session.close()


@pytest.fixture(params=["memory", "pkcs11"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every contract test runs once per provider implementation."""
    if request.param == "memory":
        return MemoryBackend()
    return Pkcs11Backend(request.getfixturevalue("softhsm_token"))


@pytest.fixture
async def make_provider(backend: Backend) -> AsyncIterator[Callable[..., KeyProvider]]:
    """Build providers on the backend's shared store; all are closed after the test."""
    made: list[KeyProvider] = []

    def make(pin: Secret | None = None) -> KeyProvider:
        provider = backend.provider(pin)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.close()


@dataclass(frozen=True)
class Zones:
    confidential: str
    restricted: str
    internal: str


@pytest.fixture
def zones() -> Zones:
    """Fresh zone names per test: the SoftHSM token is shared by the whole session."""
    tag = uuid.uuid4().hex[:10]
    return Zones(f"confidential-{tag}", f"restricted-{tag}", f"internal-{tag}")
