"""Back ends for the contract suites: every test runs once per implementation.

Keys: the in-memory provider and ``Pkcs11KeyProvider`` on a real SoftHSM2 token (one
token per session, in a tmp dir with its own SOFTHSM2_CONF; tests stay apart by using
fresh zone names). Vault: the in-memory vault and ``RedisTokenVault`` on a real
redis-server started on a free port (emptied before each test), each also behind the
cache wrapper, which must keep the same contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zoneapp.keys import KeyBackend, MemoryKeyProvider, MemoryKeyStore, Secret
from zoneapp.keys.base import kek_label
from zoneapp.stack import free_port
from zoneapp.stack.embedded import redis_server_binary
from zoneapp.stack.softhsm import activate_softhsm_env, find_softhsm_module, init_softhsm_token
from zoneapp.vault import CachingTokenVault, MemoryTokenVault, TokenVault

# Distinctive values so a leak into a message or repr is easy to spot.
USER_PIN = "pin-4417-unit"
SO_PIN = "so-pin-9902-unit"
WRONG_PIN = "wrong-pin-5530"
TOKEN_LABEL = "zoneapp-unit"
REDIS_PASSWORD = "redis-pw-7781-contract"


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoftHsmToken:
    module: str
    label: str
    pin: Secret
    env: dict[str, str]


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    """A fresh SoftHSM2 token for the whole test session (fails if SoftHSM is missing)."""
    module = find_softhsm_module()
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.fail("SoftHSM2 is not installed: `sudo apt-get install -y softhsm2`", pytrace=False)
    env = init_softhsm_token(tmp_path_factory.mktemp("softhsm"), TOKEN_LABEL, USER_PIN, SO_PIN)
    previous = os.environ.get("SOFTHSM2_CONF")
    activate_softhsm_env(env, module)
    yield SoftHsmToken(module=module, label=TOKEN_LABEL, pin=Secret(USER_PIN), env=env)
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


class KeyBackendKind:
    """How the key contract suite builds plain providers on one shared store/token."""

    name: str

    def provider(self, pin: Secret | None = None) -> KeyBackend:
        raise NotImplementedError

    def unreachable_provider(self) -> KeyBackend:
        raise NotImplementedError

    def assert_kek_not_extractable(self, zone: str, version: int) -> None:
        raise NotImplementedError


class MemoryKeys(KeyBackendKind):
    name = "memory"

    def __init__(self) -> None:
        self.store = MemoryKeyStore(pin=Secret(USER_PIN))

    def provider(self, pin: Secret | None = None) -> KeyBackend:
        return MemoryKeyProvider(self.store, pin=pin or Secret(USER_PIN))

    def unreachable_provider(self) -> KeyBackend:
        store = MemoryKeyStore()
        store.available = False
        return MemoryKeyProvider(store)

    def assert_kek_not_extractable(self, zone: str, version: int) -> None:
        # KEKs exist only inside AESGCM objects; no API of the store or provider returns them.
        kek = self.store._kek(zone, version)
        assert isinstance(kek, AESGCM)
        public = [n for n in dir(self.store) if not n.startswith("_")]
        assert public == ["available"]


class SoftHsmKeys(KeyBackendKind):
    name = "pkcs11"

    def __init__(self, token: SoftHsmToken) -> None:
        self.token = token

    def provider(self, pin: Secret | None = None) -> KeyBackend:
        from zoneapp.keys.pkcs11 import Pkcs11KeyProvider

        return Pkcs11KeyProvider(self.token.module, self.token.label, pin or self.token.pin)

    def unreachable_provider(self) -> KeyBackend:
        from zoneapp.keys.pkcs11 import Pkcs11KeyProvider

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
def backend(request: pytest.FixtureRequest) -> KeyBackendKind:
    """Every key contract test runs once per provider implementation."""
    if request.param == "memory":
        return MemoryKeys()
    return SoftHsmKeys(request.getfixturevalue("softhsm_token"))


@pytest.fixture
async def make_provider(backend: KeyBackendKind) -> AsyncIterator[Callable[..., KeyBackend]]:
    """Build providers on the backend's shared store; all are closed after the test."""
    made: list[KeyBackend] = []

    def make(pin: Secret | None = None) -> KeyBackend:
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


# -- vault -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisServer:
    port: int

    @property
    def url(self) -> str:
        return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, password-protected, nothing persisted."""
    binary = redis_server_binary()
    if binary is None:
        pytest.fail(
            "redis-server is not installed: `sudo apt-get install -y redis-server`", pytrace=False
        )
    workdir: Path = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", REDIS_PASSWORD, "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = RedisServer(port)
    try:
        _wait_for_redis(server, proc)
        yield server
    finally:
        proc.terminate()
        proc.wait(10)


def _admin(server: RedisServer) -> Any:
    import redis

    return redis.Redis(port=server.port, password=REDIS_PASSWORD, socket_timeout=5)


def _wait_for_redis(server: RedisServer, proc: subprocess.Popen[bytes]) -> None:
    """Until it answers a PING (a condition, not a fixed sleep); fails if it exits."""
    from redis.exceptions import RedisError

    client = _admin(server)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                return
            except RedisError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()


class VaultBackendKind:
    """How the vault contract suite builds a vault (plain or behind the cache)."""

    name: str
    cached: bool

    def plain(self) -> TokenVault:
        raise NotImplementedError

    def unavailable(self) -> TokenVault:
        """A vault that cannot serve (a stopped Redis, an unavailable memory vault)."""
        raise NotImplementedError

    def vault(self) -> TokenVault:
        plain = self.plain()
        return CachingTokenVault(plain) if self.cached else plain

    async def reset(self) -> None:
        return None


class MemoryVaults(VaultBackendKind):
    name = "memory"

    def __init__(self, cached: bool) -> None:
        self.cached = cached

    def plain(self) -> TokenVault:
        return MemoryTokenVault()

    def unavailable(self) -> TokenVault:
        vault = MemoryTokenVault()
        vault.available = False
        return CachingTokenVault(vault) if self.cached else vault


class RedisVaults(VaultBackendKind):
    name = "redis"

    def __init__(self, server: RedisServer, cached: bool) -> None:
        self.server = server
        self.cached = cached

    def plain(self) -> TokenVault:
        from zoneapp.vault.redis import RedisTokenVault

        return RedisTokenVault(self.server.url, timeout=2.0)

    def unavailable(self) -> TokenVault:
        from zoneapp.vault.redis import RedisTokenVault

        # Nothing listens there (the port was free a moment ago), like a stopped Redis.
        dead = RedisTokenVault(f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0", timeout=1)
        return CachingTokenVault(dead) if self.cached else dead

    async def reset(self) -> None:
        client = _admin(self.server)
        try:
            client.flushdb()
        finally:
            client.close()


@pytest.fixture(params=["memory", "redis", "memory+cache", "redis+cache"])
async def vault_backend(request: pytest.FixtureRequest) -> VaultBackendKind:
    """Every vault contract test runs on each back end, plain and behind the cache."""
    name, _, wrapper = str(request.param).partition("+")
    cached = wrapper == "cache"
    kind: VaultBackendKind
    if name == "memory":
        kind = MemoryVaults(cached)
    else:
        kind = RedisVaults(request.getfixturevalue("redis_server"), cached)
    await kind.reset()  # a test never sees what an earlier one stored
    return kind


@pytest.fixture
async def vault(vault_backend: VaultBackendKind) -> AsyncIterator[TokenVault]:
    v = vault_backend.vault()
    yield v
    await v.close()
