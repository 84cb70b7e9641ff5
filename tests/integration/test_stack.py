"""The embedded stack works: broker, vault, key store, topics, demo feed, clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from stdnum import iban as std_iban
from stdnum import luhn

from tests.waiting import async_wait_for
from zoneapp.stack import EmbeddedStack, StackError, WorkerProcess, demo, free_port
from zoneapp.stack.kafka import create_topics, partition_counts
from zoneapp.stack.process import port_is_free

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = REPO / "deploy" / "policies" / "ecommerce.yaml"


async def consume_all(bootstrap: str, topics: list[str], expected: int) -> list[object]:
    """Read ``topics`` from the beginning (no group) until ``expected`` records arrived."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[object] = []
    try:
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
            if len(records) >= expected:
                break
    finally:
        await consumer.stop()
    return records


# -- the shared session stack ------------------------------------------------------------


async def test_produce_and_consume_on_tansu(stack: EmbeddedStack) -> None:
    topic = f"it.roundtrip.{uuid.uuid4().hex[:8]}"
    assert await create_topics(stack.bootstrap, [topic], partitions=1) == [topic]
    # Creating again is tolerated and creates nothing.
    assert await create_topics(stack.bootstrap, [topic], partitions=1) == []
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, b'{"hello":"zone"}', key=b'"k1"', headers=[("content-type", b"json")]
        )
    finally:
        await producer.stop()
    (record,) = await consume_all(stack.bootstrap, [topic], 1)
    assert record.key == b'"k1"'  # type: ignore[attr-defined]
    assert record.value == b'{"hello":"zone"}'  # type: ignore[attr-defined]
    assert list(record.headers) == [("content-type", b"json")]  # type: ignore[attr-defined]


def test_redis_answers_ping(stack: EmbeddedStack) -> None:
    client = redis.Redis.from_url(stack.vault_url)
    try:
        assert client.ping() is True
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        client.close()


async def test_policy_topics_exist_with_requested_partitions(stack: EmbeddedStack) -> None:
    assert "restricted.payments" in stack.topics
    assert "security.violations" in stack.topics
    counts = await partition_counts(stack.bootstrap, stack.topics)
    assert counts == dict.fromkeys(stack.topics, stack.partitions)
    assert stack.partitions == 4


def test_env_points_a_worker_at_the_stack(stack: EmbeddedStack) -> None:
    env = stack.env(web_port=6099)
    assert env["ZONEAPP_BROKER"] == f"kafka://127.0.0.1:{stack.broker_port}"
    assert env["ZONEAPP_VAULT"] == f"redis://127.0.0.1:{stack.redis_port}/0"
    assert env["ZONEAPP_KEYS"].startswith("pkcs11:///")
    assert env["ZONEAPP_KEYS"].endswith("?token=zoneapp")
    assert env["ZONEAPP_TOPIC_PARTITIONS"] == "4"
    assert env["ZONEAPP_WEB_PORT"] == "6099"
    assert Path(env["SOFTHSM2_CONF"]).is_file()
    pin_file = Path(env["ZONEAPP_PKCS11_PIN_FILE"])
    assert pin_file.stat().st_mode & 0o777 == 0o600
    pin = pin_file.read_text()
    assert len(pin) >= 16
    # The PIN travels only as a file: not in the env, not in a repr, not in a log.
    assert all(pin not in value for value in env.values())
    assert pin not in repr(stack)
    for log in stack.logs_dir.iterdir():
        assert pin not in log.read_text(errors="replace"), log


def test_softhsm_token_has_per_zone_keys(stack: EmbeddedStack) -> None:
    """Open a provider on the token and derive HMAC working keys for every zone.

    Runs in a child process: the PKCS#11 module reads SOFTHSM2_CONF once per process,
    and the key tests in this session use a token of their own.
    """
    script = textwrap.dedent(
        """
        import asyncio, json, os
        from zoneapp.keys import build_key_provider
        from zoneapp.settings import Secret
        from zoneapp.policy import load_policy

        async def main():
            zones = sorted(load_policy(os.environ["ZONEAPP_POLICY"]).zones)
            pin = Secret.from_env_or_file("ZONEAPP_PKCS11_PIN", "ZONEAPP_PKCS11_PIN_FILE")
            provider = build_key_provider(os.environ["ZONEAPP_KEYS"], pin)
            await provider.open(zones)
            try:
                keys = {z: await provider.derive_hmac_key(z, b"it-check") for z in zones}
                again = await provider.derive_hmac_key(zones[0], b"it-check")
                versions = {z: await provider.current_kek_version(z) for z in zones}
            finally:
                await provider.close()
            print(json.dumps({
                "zones": zones,
                "lengths": sorted({len(k) for k in keys.values()}),
                "distinct": len(set(keys.values())),
                "stable": again == keys[zones[0]],
                "kek_versions": versions,
            }))

        asyncio.run(main())
        """
    )
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, **stack.env(), "PYTHONPATH": pythonpath}
    env.pop("ZONEAPP_PKCS11_PIN", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["zones"] == ["confidential", "internal", "public", "restricted"]
    assert report["lengths"] == [32]
    assert report["distinct"] == 4
    assert report["stable"] is True
    assert report["kek_versions"] == dict.fromkeys(report["zones"], 1)


def test_run_worker_starts_a_ready_worker(run_worker: Callable[[], WorkerProcess]) -> None:
    worker = run_worker()
    assert worker.running()
    assert "[^Worker]: Ready" in worker.log_text()
    worker.stop()
    assert not worker.running()


# -- private stacks ------------------------------------------------------------------------


async def test_demo_feed_lands_in_the_restricted_topics(private_stack: EmbeddedStack) -> None:
    sent = await demo.produce_demo(private_stack.broker_url, rate=0, count=400, seed=7)
    assert sent == 400
    topics = [demo.PAYMENTS_TOPIC, demo.USERS_TOPIC]
    records = await consume_all(private_stack.bootstrap, topics, sent)
    assert len(records) == sent
    per_topic = Counter(r.topic for r in records)  # type: ignore[attr-defined]
    assert per_topic[demo.PAYMENTS_TOPIC] > per_topic[demo.USERS_TOPIC] > 0
    # The demo writes only into topics the stack created (2 partitions, not tansu's 4).
    counts = await partition_counts(private_stack.bootstrap, topics)
    assert counts == dict.fromkeys(topics, 2)


@pytest.mark.usefixtures("prerequisites")
def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path / "stack", EXAMPLE_POLICY, partitions=2).start()
    pids = stack.pids
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, 0)  # alive
    # One stack per work directory.
    with pytest.raises(StackError, match="another stack is running"):
        EmbeddedStack(tmp_path / "stack", EXAMPLE_POLICY).start()
    stack.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # nothing left in the child's process group either
    stack.stop()  # idempotent
    # The work directory is free again, and a restart gets a fresh token.
    with EmbeddedStack(tmp_path / "stack", EXAMPLE_POLICY, partitions=2) as again:
        assert again.pids and set(again.pids).isdisjoint(pids)


@pytest.mark.usefixtures("prerequisites")
def test_stack_run_command_end_to_end(tmp_path: Path) -> None:
    """`stack run`: records cross, examples print, SIGINT exits 0, nothing is left running."""
    web_port = free_port()
    argv = [sys.executable, "-m", "zoneapp.stack", "run", "--workdir", str(tmp_path / "wd")]
    argv += ["--web-port", str(web_port), "--interval", "2", "--rate", "100"]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    output: list[str] = []
    crossed = examples = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and not (crossed and examples):
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, "".join(output)
                continue
            output.append(line)
            crossed = crossed or bool(re.search(r"confidential\.payments=[1-9]", line))
            examples = examples or "example from confidential.payments" in line
        assert crossed and examples, "".join(output)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, "".join(output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    while not lines.empty():
        output.append(lines.get())
    text = "".join(output)
    assert text.rstrip().endswith("stopped"), text
    banner = re.search(r"broker\s+kafka://127\.0\.0\.1:(\d+)", text)
    assert banner is not None, text
    assert port_is_free(int(banner[1])) and port_is_free(web_port)
    pin = (tmp_path / "wd" / "pkcs11.pin").read_text()
    assert pin not in text


# -- the demo generators (pure) ---------------------------------------------------------------


def test_demo_records_follow_the_policy_and_the_mix() -> None:
    rng = random.Random(11)
    kinds: Counter[str] = Counter()
    total = 20_000
    for _ in range(total):
        topic, key, body, headers = demo.make_record(rng)
        assert dict(headers)["content-type"] == b"application/json"
        assert isinstance(json.loads(key), str)
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            kinds["broken"] += 1
            continue
        assert value["tenant_id"] in demo.TENANTS
        if topic == demo.USERS_TOPIC:
            kinds["user"] += 1
            assert set(value["address"]) == {"street", "city", "zip", "country"}
            continue
        kinds["payment"] += 1
        card = value["card_number"].replace(" ", "").replace("-", "")
        assert luhn.is_valid(card) and card.endswith(value["card_last4"])
        if "iban" in value["billing"]:
            assert std_iban.is_valid(value["billing"]["iban"]), value["billing"]["iban"]
            assert value["billing"]["iban"][:2] == value["billing"]["country"]
        if "ssn" in value:
            area = int(value["ssn"][:3])
            assert 0 < area < 900 and area != 666
        assert {"name", "date_of_birth", "zip", "email", "phone"} <= set(value["customer"])
        assert {"sku", "quantity", "price"} == set(value["items"][0])
        if set(value) & set(demo.UNCLASSIFIED_FIELDS):
            kinds["unclassified"] += 1
        if value.get("notes") and value["notes"] not in demo.CLEAN_NOTES:
            kinds["pii_notes"] += 1
    payments = kinds["payment"]
    assert 0.03 < kinds["pii_notes"] / payments < 0.07
    assert 0.01 < kinds["unclassified"] / payments < 0.03
    assert 0.002 < kinds["broken"] / total < 0.01
    assert 0.15 < kinds["user"] / total < 0.25


def test_demo_generators_are_reproducible() -> None:
    assert demo.make_payment(random.Random(5)) == demo.make_payment(random.Random(5))
    assert demo.make_user(random.Random(5)) == demo.make_user(random.Random(5))
    assert demo.luhn_valid("4111 1111 1111 1111") and not demo.luhn_valid("4111111111111112")
    assert demo.iban("DE", "370400440532013000") == "DE89370400440532013000"
    assert demo.iban("GB", "NWBK60161331926819") == "GB29NWBK60161331926819"


# -- stack tail ---------------------------------------------------------------------------


def run_tail(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoneapp.stack", "tail", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_tail_prints_key_headers_value_of_every_partition(stack: EmbeddedStack) -> None:
    topic = f"it.tail.{uuid.uuid4().hex[:8]}"
    await create_topics(stack.bootstrap, [topic], partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1)
    await producer.start()
    try:
        for i in range(6):
            await producer.send_and_wait(
                topic,
                json.dumps({"n": i, "note": "\x1b[2Jgone"}).encode(),
                key=json.dumps(f"k{i}").encode(),
                headers=[("x-i", str(i).encode()), ("x-esc", b"\x1b]0;title\x07")],
                partition=i % 3,
            )
    finally:
        await producer.stop()
    result = run_tail(topic, "--broker", stack.bootstrap, "--no-follow")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for i in range(6):
        assert f'key:     "k{i}"' in out and f"x-i={i}," in out and f'"n": {i},' in out
    assert {int(p) for p in re.findall(r"\[partition (\d+), offset", out)} == {0, 1, 2}
    assert "\x1b" not in out and "\x07" not in out and "\\u001b[2Jgone" in out
    # -n stops after that many records, in the stack's own work directory's broker.
    limited = run_tail(topic, "--broker", stack.bootstrap, "-n", "2")
    assert limited.returncode == 0 and limited.stdout.count("  value:   ") == 2
    # --from end prints only what arrives later: nothing here ...
    later = run_tail(topic, "--broker", stack.bootstrap, "--from", "end", "--no-follow")
    assert later.returncode == 0 and later.stdout == ""
    # ... and, following, the next record.
    argv = [sys.executable, "-m", "zoneapp.stack", "tail", topic, "--broker", stack.bootstrap]
    follow = subprocess.Popen(
        [*argv, "--from", "end", "-n", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # The follower prints nothing until it has found the end, and a record produced
        # before that is an old one to it. So produce a new record until it prints one
        # (and exits, -n 1), instead of guessing how long it takes to get there.
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1)
        await producer.start()
        try:

            async def printed_one() -> bool:
                await producer.send_and_wait(topic, b'{"n": "new"}', key=b'"new"', partition=1)
                try:
                    await asyncio.to_thread(follow.wait, 1.0)
                except subprocess.TimeoutExpired:
                    return False
                return True

            await async_wait_for(printed_one, 30, "`tail --from end -n 1` to print a record")
        finally:
            await producer.stop()
        out, _ = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0
    # One record, a new one: none of the six that were there before it started.
    assert out.count("  value:   ") == 1 and '"n": "new"' in out
    assert '"n": 0' not in out and "x-i=" not in out


async def test_tail_refuses_an_unknown_topic_without_creating_it(stack: EmbeddedStack) -> None:
    topic = f"it.no-such-topic.{uuid.uuid4().hex[:8]}"
    result = run_tail(topic, "--broker", stack.bootstrap, "--no-follow")
    assert result.returncode == 1
    assert f"no topic '{topic}'" in result.stderr and "restricted.payments" in result.stderr
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=None)
    await consumer.start()
    try:
        assert topic not in await consumer.topics()
    finally:
        await consumer.stop()


def test_tail_finds_the_broker_of_a_running_stack_only(
    private_stack: EmbeddedStack, tmp_path: Path
) -> None:
    state = json.loads(private_stack.state_file.read_text())
    assert state == {"broker": private_stack.bootstrap}
    found = run_tail("audit.access", "--workdir", str(private_stack.workdir), "--no-follow")
    assert found.returncode == 0, found.stderr
    missing = run_tail("audit.access", "--workdir", str(tmp_path / "nothing"))
    assert missing.returncode == 1
    assert "no running stack in" in missing.stderr and "make run" in missing.stderr
    private_stack.stop()
    assert not private_stack.state_file.exists()
