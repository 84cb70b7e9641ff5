"""Keys and vault on the real stack: the commands (detokenize, decrypt, rotate-key, erase)
with their audit trail, rotation picked up by a running worker, and fail-closed behaviour
when Redis or the HSM is unavailable."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.records import IBAN
from tests.waiting import async_wait_for, wait_for
from zoneapp.dlp.credit_card import luhn_ok
from zoneapp.keys import parse_ciphertext_header
from zoneapp.stack import EmbeddedStack, WorkerProcess, free_port
from zoneapp.stack.worker import faust_command
from zoneapp.transforms import VaultEntry
from zoneapp.vault import layout
from zoneapp.vault.redis import RedisTokenVault

from .conftest import REPO, RunWorker, spawn_worker
from .test_pipeline import SENSITIVE, header, payment, read_all

pytestmark = pytest.mark.integration


def faust(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*faust_command(), "-A", "zoneapp", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=REPO,
        timeout=120,
    )


async def send(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    ids = []
    try:
        for r in records:
            meta = await producer.send_and_wait(topic, value=json.dumps(r).encode())
            ids.append(f"{topic}/{meta.partition}/{meta.offset}")
    finally:
        await producer.stop()
    return ids


def outputs(stack: EmbeddedStack, ids: list[str], timeout: float = 60.0) -> dict[str, Any]:
    """Wait for the sanitized outputs of the given source records; returns them by record id."""
    wanted = {i.encode() for i in ids}

    def done(out: dict[str, list[Any]]) -> bool:
        got = {header(r, "zoneapp-record-id") for r in out["confidential.payments"]}
        return wanted <= got

    out = asyncio.run(read_all(stack.bootstrap, ["confidential.payments"], done, timeout=timeout))
    return {
        (header(r, "zoneapp-record-id") or b"").decode(): r
        for r in out["confidential.payments"]
        if header(r, "zoneapp-record-id") in wanted
    }


def test_commands_reverse_only_for_the_right_tenant_zone_and_field(
    stack: EmbeddedStack, run_worker: RunWorker
) -> None:
    run_worker()
    run = uuid.uuid4().hex[:8]
    email = f"jane.{run}@example.com"
    # A card of this run's own: the shared test card may be in the worker's token cache
    # already (from records earlier tests left on the stack), and a token the worker
    # knows is not added to a new subject's erasure index, so erasure would find 1.
    card = own_card(run)
    record = payment(run, 1, card_number=card, customer={"email": email})
    [rid] = asyncio.run(send(stack.bootstrap, "restricted.payments", [record]))
    doc = orjson.loads(outputs(stack, [rid])[rid].value)
    token, iban = doc["customer"]["email"], doc["billing"]["iban"]
    operator = f"it-{run}"  # the commands audit who ran them as cli:<login name>
    env = {**stack.env(), "LOGNAME": operator, "USER": operator}

    ok = faust(env, "detokenize", "--zone", "restricted", "--tenant", "acme", "-", stdin=token)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == email
    assert email not in ok.stderr
    wrong_tenant = faust(env, "detokenize", "--zone", "restricted", "--tenant", "globex", token)
    assert wrong_tenant.returncode == 1 and "unknown_token" in wrong_tenant.stderr
    wrong_zone = faust(env, "detokenize", "--zone", "confidential", "--tenant", "acme", token)
    assert wrong_zone.returncode == 1 and "wrong_zone" in wrong_zone.stderr

    args = ["decrypt", "--zone", "restricted", "--topic", "confidential.payments"]
    plain = faust(env, *args, "--field", "billing.iban", "-", stdin=iban)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout) == IBAN
    moved = faust(env, *args, "--field", "customer.phone", iban)
    assert moved.returncode == 1 and "tampered" in moved.stderr

    # Erasure: the token downstream stays, but can no longer be reversed.
    erased = faust(env, "erase", "--tenant", "acme", "--subject", email)
    assert erased.returncode == 0, erased.stderr
    assert "erased 2 token mapping(s)" in erased.stdout  # the email and the card of that payment
    gone = faust(env, "detokenize", "--zone", "restricted", "--tenant", "acme", token)
    assert gone.returncode == 1 and "unknown_token" in gone.stderr
    # ... and the subject's encrypted fields were crypto-shredded with its key.
    shredded = faust(env, *args, "--field", "billing.iban", iban)
    assert shredded.returncode == 1 and "erased" in shredded.stderr

    # Every call was audited, allowed or refused, and no audit record holds a value.
    # The commands ran as this test's own operator, so its events are told apart from
    # those earlier tests left on the shared audit topic.
    who = f"cli:{operator}"

    def mine(out: dict[str, list[Any]]) -> list[dict[str, Any]]:
        events = (orjson.loads(r.value) for r in out["audit.access"])
        return [e for e in events if e.get("who") == who]

    audit = asyncio.run(
        read_all(stack.bootstrap, ["audit.access"], lambda out: len(mine(out)) >= 8, timeout=30)
    )
    events = mine(audit)
    assert Counter((e["action"], e["outcome"]) for e in events) == Counter(
        [
            ("detokenize", "allowed"),
            ("detokenize", "refused:unknown_token"),  # the wrong tenant
            ("detokenize", "refused:wrong_zone"),
            ("decrypt", "allowed"),
            ("decrypt", "refused:tampered"),  # moved to another field
            ("erase", "erased:2"),
            ("detokenize", "refused:unknown_token"),  # erased
            ("decrypt", "refused:erased"),
        ]
    ), events
    assert {e["token"] for e in events if e["action"] == "detokenize"} == {token}
    blob = b"".join(r.value for r in audit["audit.access"])
    for secret in [*SENSITIVE, email, card]:
        assert secret.encode() not in blob


def own_card(run: str) -> str:
    """A Luhn-valid 16-digit card number derived from ``run`` (a hex id)."""
    head = f"4{int(run, 16) % 10**14:014d}"
    return next(card for d in "0123456789" if luhn_ok(card := head + d))


def test_rotation_reaches_a_running_worker_and_old_data_still_decrypts(
    own_stack: EmbeddedStack, tmp_path: Path
) -> None:
    # A stack of its own: rotating keys must not change what other tests see.
    stack = own_stack
    worker = start_worker(stack, tmp_path, "rot", ZONEAPP_KEY_VERSION_CHECK_INTERVAL="1")
    run = uuid.uuid4().hex[:8]
    [before] = asyncio.run(send(stack.bootstrap, "restricted.payments", [payment(run, 1)]))
    old = orjson.loads(outputs(stack, [before])[before].value)["billing"]["iban"]
    old_version = parse_ciphertext_header(old).kek_version
    env = stack.env()
    rotated = faust(env, "rotate-key", "restricted")
    assert rotated.returncode == 0, rotated.stderr
    assert f"KEK version {old_version + 1} is now current" in rotated.stdout

    def sanitized_under_a_new_key() -> dict[str, Any] | None:
        # The worker looks for a new version every second: send records until one
        # comes out under it.
        [rid] = asyncio.run(send(stack.bootstrap, "restricted.payments", [payment(run, 2)]))
        doc: dict[str, Any] = orjson.loads(outputs(stack, [rid])[rid].value)
        new = parse_ciphertext_header(doc["billing"]["iban"]).kek_version
        return doc if new != old_version else None

    doc = wait_for(sanitized_under_a_new_key, 30, "new records to use the rotated KEK", interval=1)
    new_version = parse_ciphertext_header(doc["billing"]["iban"]).kek_version
    assert new_version == old_version + 1, "new records did not switch to the next version"
    args = ["decrypt", "--zone", "restricted", "--topic", "confidential.payments"]
    for ciphertext in (old, doc["billing"]["iban"]):
        plain = faust(env, *args, "--field", "billing.iban", ciphertext)
        assert plain.returncode == 0, plain.stderr
        assert json.loads(plain.stdout) == IBAN
    assert "Traceback" not in worker.log_text()
    worker.stop()


def test_concurrent_first_sightings_store_one_mapping(stack: EmbeddedStack) -> None:
    """Two workers' vaults writing the same new tokens at once: one mapping each, no clash."""

    async def race() -> tuple[list[VaultEntry], list[VaultEntry], int]:
        run = uuid.uuid4().hex[:8]
        entries = [
            VaultEntry("acme", "email", f"tok_{run}{i}", f"fp{i}", f"zenc2.ct{i}")
            for i in range(300)
        ]
        a, b = RedisTokenVault(stack.vault_url), RedisTokenVault(stack.vault_url)
        try:
            ca, cb = await asyncio.gather(a.store(entries), b.store(list(reversed(entries))))
            stored = [await a.fetch("acme", e.token) for e in entries]
        finally:
            await a.close()
            await b.close()
        return ca, cb, sum(1 for s in stored if s is not None)

    clashes_a, clashes_b, stored = asyncio.run(race())
    assert clashes_a == [] and clashes_b == [] and stored == 300


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path / "stack", REPO / "deploy" / "policies" / "ecommerce.yaml") as s:
        yield s


def start_worker(stack: EmbeddedStack, tmp: Path, name: str, **env: str) -> WorkerProcess:
    return spawn_worker(stack, tmp, name, env)


def forwarded_ids(stack: EmbeddedStack, ids: list[str], timeout: float) -> set[str]:
    wanted = {i.encode() for i in ids}
    out = asyncio.run(
        read_all(
            stack.bootstrap,
            ["confidential.payments", "restricted.quarantine"],
            lambda o: wanted <= {header(r, "zoneapp-record-id") for t in o.values() for r in t},
            timeout=timeout,
        )
    )
    return {
        (header(r, "zoneapp-record-id") or b"").decode()
        for r in out["confidential.payments"]
        if header(r, "zoneapp-record-id") in wanted
    }


def fresh_payments(run: str, n: int) -> list[dict[str, Any]]:
    # New emails, so every record needs a vault write.
    return [payment(run, i, customer={"email": f"u{i}.{run}@example.com"}) for i in range(n)]


def test_redis_outage_holds_records_until_it_returns(
    own_stack: EmbeddedStack, tmp_path: Path
) -> None:
    worker = start_worker(own_stack, tmp_path, "w1")
    try:
        run = uuid.uuid4().hex[:8]
        first = asyncio.run(
            send(own_stack.bootstrap, "restricted.payments", fresh_payments(run, 10))
        )
        assert forwarded_ids(own_stack, first, 60) == set(first)
        own_stack.stop_redis()
        held = asyncio.run(
            send(own_stack.bootstrap, "restricted.payments", fresh_payments(run + "b", 10))
        )
        wait_for(lambda: "token vault unavailable" in worker.log_text(), 30, "the outage log")
        # Nothing may cross while Redis is down: an absence has no event to wait on, so
        # this watches the outputs for a fixed window (the behaviour under test).
        assert forwarded_ids(own_stack, held, 5) == set(), "forwarded without storing tokens"
        own_stack.start_redis()
        assert forwarded_ids(own_stack, held, 90) == set(held)
        wait_for(lambda: "token vault is back" in worker.log_text(), 10, "the recovery log")
    finally:
        worker.stop()


def test_wrong_pin_forwards_nothing_and_loses_nothing(
    own_stack: EmbeddedStack, tmp_path: Path
) -> None:
    bad_pin = tmp_path / "bad-pin"
    bad_pin.write_text("000000\n")
    run = uuid.uuid4().hex[:8]
    ids = asyncio.run(send(own_stack.bootstrap, "restricted.payments", fresh_payments(run, 10)))
    worker = start_worker(own_stack, tmp_path, "bad", ZONEAPP_PKCS11_PIN_FILE=str(bad_pin))
    try:
        wait_for(lambda: "HSM unavailable" in worker.log_text(), 60, "the HSM failure log")
        # A fixed window, as above: nothing crosses without its keys.
        assert forwarded_ids(own_stack, ids, 5) == set()
        assert "000000" not in worker.log_text()
    finally:
        worker.stop()
    # The same consumer group with the right PIN: every held record comes through.
    good = start_worker(own_stack, tmp_path, "good")
    try:
        assert forwarded_ids(own_stack, ids, 90) == set(ids)
    finally:
        good.stop()


def test_vault_with_password_and_acl_user(tmp_path: Path) -> None:
    """A password-protected Redis (and an ACL user) through ZONEAPP_VAULT[_PASSWORD_FILE]."""
    import shutil

    from zoneapp.settings import Settings
    from zoneapp.vault import VaultUnavailableError, build_vault

    port = free_port()
    acl = f"user zoneapp on >acl-secret {layout.acl_rules()}"
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--requirepass", "admin-secret", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        pw = tmp_path / "redis-password"
        pw.write_text("admin-secret\n")

        async def check() -> None:
            async def password_accepted() -> bool:
                good = build_vault(
                    *_vault_args(Settings.from_env({
                        "ZONEAPP_VAULT": f"redis://127.0.0.1:{port}/0",
                        "ZONEAPP_VAULT_PASSWORD_FILE": str(pw),
                    }))
                )  # fmt: skip
                try:
                    await good.ping()
                    return True
                finally:
                    await good.close()

            await async_wait_for(
                password_accepted,
                10,
                "redis-server to accept the password file",
                retry_on=(VaultUnavailableError,),
            )
            admin = build_vault(f"redis://:admin-secret@127.0.0.1:{port}/0")
            await admin._redis.execute_command("ACL", "SETUSER", *acl.split()[1:])  # type: ignore[attr-defined]
            await admin.close()
            user = build_vault(f"redis://zoneapp:acl-secret@127.0.0.1:{port}/0")
            entry = VaultEntry("acme", "email", "tok_acl", "fp", "zenc2.x")
            assert await user.store([entry]) == []
            assert (await user.fetch("acme", "tok_acl")) is not None
            await user.close()
            anonymous = build_vault(f"redis://127.0.0.1:{port}/0")
            with pytest.raises(VaultUnavailableError) as info:
                await anonymous.ping()
            assert "secret" not in str(info.value)
            await anonymous.close()

        asyncio.run(check())
    finally:
        proc.terminate()
        proc.wait(10)


def _vault_args(settings: Any) -> tuple[str, Any]:
    return settings.vault_url, settings.vault_password


def test_two_workers_tokenize_the_same_values_identically(
    stack: EmbeddedStack, run_worker: RunWorker
) -> None:
    """Two workers of one group split the partitions and see the same values concurrently:
    every sighting gets the same token, and the vault holds one mapping per value."""
    import redis

    group = {"ZONEAPP_APP_ID": f"zoneapp-two-{uuid.uuid4().hex[:6]}"}
    # Started together, so both join in one group generation (see README, known issues).
    workers = [run_worker(group, boundaries="payments-to-confidential", wait=False) for _ in "ab"]
    for worker in workers:
        worker.wait_ready(120)
    run = uuid.uuid4().hex[:8]
    emails = [f"shared{i}.{run}@example.com" for i in range(5)]
    records = [
        payment(run, i, tenant_id="acme" if i % 3 else "globex", customer={"email": emails[i % 5]})
        for i in range(120)
    ]

    async def send_keyed() -> list[str]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1)
        await producer.start()
        ids = []
        try:
            for i, r in enumerate(records):  # distinct keys spread the values over partitions
                meta = await producer.send_and_wait(
                    "restricted.payments",
                    value=json.dumps(r).encode(),
                    key=json.dumps(f"k{i}").encode(),
                )
                ids.append(f"restricted.payments/{meta.partition}/{meta.offset}")
        finally:
            await producer.stop()
        return ids

    ids = asyncio.run(send_keyed())
    got = outputs(stack, ids, timeout=120)
    assert len(got) == len(ids)
    tokens: dict[tuple[str, str], set[str]] = {}
    for i, rid in enumerate(ids):
        doc = orjson.loads(got[rid].value)
        tokens.setdefault((records[i]["tenant_id"], emails[i % 5]), set()).add(
            doc["customer"]["email"]
        )
    assert all(len(t) == 1 for t in tokens.values()), tokens
    # Tenants never share a token for the same value.
    for email in emails:
        assert tokens[("acme", email)] != tokens[("globex", email)]
    client = redis.Redis.from_url(stack.vault_url)
    for (tenant, _), (token,) in tokens.items():
        assert client.exists(f"zoneapp:tok:{{{tenant}}}:{token}") == 1
