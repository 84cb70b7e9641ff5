"""The shipped Redis ACL runs the vault (issue 8, item 17).

``deploy/redis/start.sh`` starts a real redis-server with ``REDIS_ACL_USER`` set, so the
vault's user gets exactly the shipped rule; the server runs in cluster mode (one node
owning every slot), so a command or transaction spanning slots fails as it would on a
Redis Cluster. Then every vault operation runs as that user: the batch loop's writes and
subject keys, collisions, detokenize and decrypt, metadata by token, and erasure. Redis's
ACL log must stay empty: no command of the vault was refused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import redis.asyncio as aioredis

from tests.records import EMAIL, PHONE, payment, raw
from tests.waiting import async_wait_for, wait_for
from zoneapp.access.erasure import erase_subject
from zoneapp.access.fields import AccessError, FieldAccess
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import load_policy
from zoneapp.stack import free_port
from zoneapp.transforms import VaultEntry
from zoneapp.vault import CachingTokenVault, layout
from zoneapp.vault.redis import RedisTokenVault
from zoneapp.web.tokens import TokenDirectory

from .conftest import EXAMPLE_POLICY, REPO, require_prerequisites

pytestmark = pytest.mark.integration
T = TypeVar("T")
PASSWORD = "vault-acl-secret"
ADMIN = "admin-acl-secret"


class NoteAudit:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def write(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    """redis-server through deploy/redis/start.sh with REDIS_ACL_USER=zoneapp, cluster mode."""
    require_prerequisites()
    port = cluster_port()
    base = (REPO / "deploy" / "redis" / "redis.conf").read_text(encoding="utf-8")
    base = base.replace("port 6379", f"port {port}").replace("dir /data", f"dir {tmp_path}")
    base = base.replace("bind 0.0.0.0 -::*", "bind 127.0.0.1")
    # The test's own admin (to assign the slots and read the ACL log), and cluster mode.
    base += f"\ncluster-enabled yes\nuser admin on >{ADMIN} ~* &* +@all\n"
    (tmp_path / "base.conf").write_text(base, encoding="utf-8")
    (tmp_path / "password").write_text(PASSWORD + "\n", encoding="utf-8")
    env = {
        **os.environ,
        "REDIS_BASE_CONF": str(tmp_path / "base.conf"),
        "REDIS_PASSWORD_FILE": str(tmp_path / "password"),
        "REDIS_RUNTIME_CONF": str(tmp_path / "runtime.conf"),
        "REDIS_ACL_USER": "zoneapp",
        "PATH": os.pathsep.join(
            [os.environ.get("PATH", ""), "/usr/bin", "/usr/sbin", "/usr/local/bin"]
        ),
    }
    assert shutil.which("redis-server", path=env["PATH"])
    log = (tmp_path / "redis.log").open("wb")
    proc = subprocess.Popen(
        ["sh", str(REPO / "deploy" / "redis" / "start.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        try:
            asyncio.run(_assign_slots(port, proc))
        except (OSError, RuntimeError, aioredis.RedisError, pytest.fail.Exception) as exc:
            tail = (tmp_path / "redis.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"redis-server on {port} (exit {proc.poll()}): {exc!r}\n{tail}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def cluster_port() -> int:
    """A free port a cluster node accepts: its bus listens on port + 10000, so Redis
    refuses ports above 55535 (free ports from the kernel often are)."""
    return wait_for(
        lambda: port if (port := free_port()) <= 55535 else None,
        10,
        "a free port below 55536",
        interval=0,
    )


async def _assign_slots(port: int, proc: subprocess.Popen[bytes]) -> None:
    admin = aioredis.Redis(port=port, username="admin", password=ADMIN)

    async def slots_assigned() -> bool:
        if proc.poll() is not None:
            raise RuntimeError("redis-server exited")  # no use waiting for it
        await command(admin, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        return True

    async def cluster_ok() -> bool:
        return b"cluster_state:ok" in await command(admin, "CLUSTER", "INFO")

    try:
        await async_wait_for(
            slots_assigned,
            60,
            "redis-server to start and take the slots",
            retry_on=(ConnectionError, OSError, aioredis.ConnectionError),
        )
        await async_wait_for(cluster_ok, 60, "the one-node cluster to come up")
    finally:
        await admin.aclose()  # type: ignore[attr-defined]


async def command(client: aioredis.Redis, *args: str) -> Any:
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


async def within(call: Awaitable[T]) -> T:
    """A refused command makes the guard retry forever: fail instead of hanging."""
    return await asyncio.wait_for(call, 30)


def test_the_vault_runs_as_the_shipped_acl_user_on_a_cluster_node(acl_redis: int) -> None:
    asyncio.run(_run_every_operation(acl_redis))


async def _run_every_operation(port: int) -> None:
    policy = load_policy(EXAMPLE_POLICY)
    provider = MemoryKeyProvider()
    zones = sorted(policy.zones)
    await provider.provision(zones)
    await provider.open(zones)
    keyring = KeyRing(provider, zones)
    admin = aioredis.Redis(port=port, username="admin", password=ADMIN)
    vault = CachingTokenVault(RedisTokenVault(f"redis://zoneapp:{PASSWORD}@127.0.0.1:{port}/0"))
    try:
        await within(vault.ping())
        assert (await command(admin, "ACL", "GETUSER", "zoneapp")) is not None
        # The batch loop: subject keys (created, then fetched), token mappings, indexes.
        sink = MemorySink()
        guard = BoundaryGuard(
            policy, policy.boundary("payments-to-confidential"), keyring, vault, sink
        )
        records = [
            raw(payment(payment_id="p1"), offset=1),
            raw(payment(payment_id="p2", tenant_id="globex"), offset=2),
        ]
        await within(guard.handle(records))
        vault.cache.clear()  # a cold cache: ask Redis again
        await within(guard.handle([raw(payment(payment_id="p3"), offset=3)]))
        docs = [orjson.loads(v or b"") for _, _, v, *_ in sink.on("confidential.payments")]
        assert [d["payment_id"] for d in docs] == ["p1", "p2", "p3"]
        acme = docs[0]
        token = acme["customer"]["email"]
        # A different value under an existing token is a collision, found in Redis.
        stored = await within(vault.fetch("acme", token))
        assert stored is not None
        clash = VaultEntry("acme", stored.field_class, token, "another-value", stored.ciphertext)
        vault.cache.clear()
        assert await within(vault.store([clash])) == [clash]
        # Reversal: detokenize, decrypt (fetches the subject key), metadata by token alone.
        access = FieldAccess("restricted", keyring, vault, NoteAudit())
        assert await within(access.detokenize("dpo", "acme", token)) == EMAIL.encode()
        phone = ("confidential.payments", "customer.phone")
        assert await within(access.decrypt("dpo", acme["customer"]["phone"], *phone)) == (
            orjson.dumps(PHONE)
        )
        directory = TokenDirectory(lambda: vault, policy, "redis://")
        info = await within(directory.lookup(token))
        assert info is not None and info.tenant == "acme"
        await admin.set(layout.legacy_index_key("tok_legacyindex"), "acme")
        assert await within(vault.find_tenant("tok_legacyindex")) == "acme"
        # Erasure: one transaction in the tenant's slot, then the index entries.
        erased = await within(erase_subject(policy, keyring, vault, "acme", EMAIL))
        assert erased == 2
        with pytest.raises(AccessError) as gone:
            await within(access.detokenize("dpo", "acme", token))
        assert gone.value.reason == "unknown_token"
        with pytest.raises(AccessError) as shredded:
            await within(access.decrypt("dpo", acme["customer"]["phone"], *phone))
        assert shredded.value.reason == "erased"
        assert await admin.exists(layout.index_key(token)) == 0
        # globex's data is untouched.
        globex = docs[1]
        assert (
            await within(access.detokenize("dpo", "globex", globex["customer"]["email"]))
            == EMAIL.encode()
        )
        # Nothing the vault sent was refused by the ACL (nor by the cluster's slot rules).
        assert await command(admin, "ACL", "LOG") == []
        # And the user really is restricted: other keys and other commands are refused.
        user = aioredis.Redis(port=port, username="zoneapp", password=PASSWORD)
        for call in (user.get("other:key"), user.keys("*"), user.flushall()):
            with pytest.raises(aioredis.ResponseError):
                await call
        await user.aclose()  # type: ignore[attr-defined]
    finally:
        await vault.close()
        await admin.aclose()  # type: ignore[attr-defined]
        await provider.close()
