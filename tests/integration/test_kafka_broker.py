"""What only real Apache Kafka can show: SASL_SCRAM over TLS, and a broker restart with data.

These tests always run on Kafka (``broker="kafka"``), whatever ``ZONEAPP_STACK_BROKER``
says: tansu has neither users, TLS nor a log that survives a restart.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from zoneapp.settings import Secret
from zoneapp.stack import EmbeddedStack
from zoneapp.stack.apache_kafka import BrokerSecurity, BrokerTls, ScramUser
from zoneapp.stack.demo import make_record

from .conftest import EXAMPLE_POLICY, require_prerequisites, spawn_worker
from .web.tls import make_tls

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

SOURCES = ("restricted.payments", "restricted.user-pii")
#: Where a record of SOURCES ends up: forwarded, or quarantined in its own zone.
OUTPUTS = ("confidential.payments", "confidential.user-profiles", "restricted.quarantine")
WORKER_USER = "zoneapp-worker"
Coord = tuple[str, int, int]


def _header(record: Any, name: str) -> bytes | None:
    for key, value in record.headers:
        if key == name:
            return bytes(value)
    return None


def source_of(record: Any) -> Coord | None:
    """(topic, partition, offset) of the input an output record came from."""
    topic = _header(record, "zoneapp-source-topic")
    partition = _header(record, "zoneapp-source-partition")
    offset = _header(record, "zoneapp-source-offset")
    if topic is None or partition is None or offset is None:
        return None
    return topic.decode(), int(partition), int(offset)


def emails_of(value: bytes) -> set[bytes]:
    """The e-mail addresses a demo record carries in clear (none if it is broken JSON)."""
    try:
        record = json.loads(value)
    except ValueError:
        return set()
    found = {record.get("email"), (record.get("customer") or {}).get("email")}
    return {e.encode() for e in found if isinstance(e, str)}


async def produce_feed(
    bootstrap: str,
    count: int,
    *,
    seed: int,
    client: dict[str, Any],
    pace: float = 0.0,
    emails: set[bytes] | None = None,
) -> list[Coord]:
    """``count`` demo records (payments, users, some broken) into SOURCES; their coordinates.

    ``emails`` collects the addresses the records carry (they must never cross).
    """
    rng = random.Random(seed)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **client)
    await producer.start()
    sent: list[Coord] = []
    try:
        for _ in range(count):
            topic, key, value, headers = make_record(rng)
            if emails is not None:
                emails |= emails_of(value)
            meta = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
            sent.append((topic, meta.partition, meta.offset))
            if pace:
                await asyncio.sleep(pace)
    finally:
        await producer.stop()
    return sent


async def read_outputs(
    bootstrap: str, want: set[Coord], *, client: dict[str, Any], timeout: float
) -> tuple[dict[Coord, int], list[Any]]:
    """Read OUTPUTS from the start until every coordinate in ``want`` was seen (or timeout).

    Returns how often each source coordinate was seen, and the forwarded records.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client,
    )
    await consumer.start()
    seen: dict[Coord, int] = {}
    forwarded: list[Any] = []
    try:
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(t, p)
            for t in OUTPUTS
            for p in sorted(consumer.partitions_for_topic(t) or [])
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not want <= seen.keys():
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    coord = source_of(record)
                    if coord is not None:
                        seen[coord] = seen.get(coord, 0) + 1
                    if tp.topic != "restricted.quarantine":
                        forwarded.append(record)
    finally:
        await consumer.stop()
    return seen, forwarded


def scram_stack_security(directory: Path) -> tuple[BrokerSecurity, Secret]:
    """A CA and broker certificate for 127.0.0.1, the stack's admin and a worker user."""
    ca, cert, key = make_tls(directory, ["127.0.0.1"])
    worker_password = Secret(secrets.token_urlsafe(24))
    security = BrokerSecurity(
        tls=BrokerTls(cafile=ca, certfile=cert, keyfile=key),
        admin=ScramUser("zoneapp-stack", Secret(secrets.token_urlsafe(24))),
        users=(ScramUser(WORKER_USER, worker_password),),
    )
    return security, worker_password


@pytest.fixture(scope="module")
def scram(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedStack, Secret]]:
    """Kafka with only a SASL_SSL (SCRAM-SHA-512) client listener; users made by Kafka's
    StorageTool when it formats the storage."""
    require_prerequisites("kafka")
    base = tmp_path_factory.mktemp("scram")
    security, worker_password = scram_stack_security(base / "tls")
    stack = EmbeddedStack(
        base / "stack", EXAMPLE_POLICY, partitions=2, broker="kafka", kafka_security=security
    )
    with stack:
        yield stack, worker_password


def _password_file(path: Path, value: bytes) -> Path:
    path.write_bytes(value)
    path.chmod(0o600)
    return path


def test_worker_sanitizes_a_feed_over_sasl_scram_tls(
    scram: tuple[EmbeddedStack, Secret], tmp_path: Path
) -> None:
    stack, worker_password = scram
    client = stack.security().aiokafka_kwargs()
    # The broker answers nothing in plaintext: TLS is really on.
    with pytest.raises((KafkaError, OSError)):
        asyncio.run(produce_feed(stack.bootstrap, 1, seed=0, client={}))
    worker = spawn_worker(
        stack,
        tmp_path,
        "scram-worker",
        {
            "ZONEAPP_SASL_USERNAME": WORKER_USER,
            "ZONEAPP_SASL_PASSWORD_FILE": str(
                _password_file(tmp_path / "worker.password", worker_password.reveal())
            ),
        },
    )
    emails: set[bytes] = set()
    sent = asyncio.run(produce_feed(stack.bootstrap, 60, seed=14, client=client, emails=emails))
    seen, forwarded = asyncio.run(
        read_outputs(stack.bootstrap, set(sent), client=client, timeout=120)
    )
    assert set(sent) <= seen.keys(), f"{len(set(sent) - seen.keys())} records never came out"
    assert forwarded, "nothing was forwarded"
    assert emails, "the feed carried no e-mail address to check"
    # Both boundaries tokenize e-mail addresses: none crosses, in value, key or headers.
    for record in forwarded:
        carried = b"".join(
            [record.value or b"", record.key or b"", *(v for _, v in record.headers)]
        )
        assert not [e for e in emails if e in carried], record.topic
    log = worker.log_text()
    assert worker_password.reveal().decode() not in log
    assert stack.kafka_security is not None
    assert stack.kafka_security.admin.password.reveal().decode() not in stack.broker_log.read_text()


def test_wrong_scram_password_is_refused_and_the_worker_says_so(
    scram: tuple[EmbeddedStack, Secret], tmp_path: Path
) -> None:
    stack, _ = scram
    wrong = secrets.token_urlsafe(24)
    worker = spawn_worker(
        stack,
        tmp_path,
        "wrong-password",
        {
            "ZONEAPP_SASL_USERNAME": WORKER_USER,
            "ZONEAPP_SASL_PASSWORD_FILE": str(
                _password_file(tmp_path / "wrong.password", wrong.encode())
            ),
        },
        wait=False,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.5)
    log = worker.log_text()
    # It stops instead of retrying forever, and names the cause (never the password).
    assert worker.poll() not in (None, 0), log[-3000:]
    assert "SaslAuthenticationFailed" in log, log[-3000:]
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in log
    assert not worker.is_ready()
    assert wrong not in log


@pytest.fixture
def kafka_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """A plaintext Kafka stack of its own (2 partitions), to stop and restart."""
    require_prerequisites("kafka")
    with EmbeddedStack(tmp_path / "stack", EXAMPLE_POLICY, partitions=2, broker="kafka") as stack:
        yield stack


async def count_records(bootstrap: str, topics: Sequence[str]) -> int:
    """How many records the topics hold (end minus beginning offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or []]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return sum(ends[tp] - starts[tp] for tp in tps)


async def produce_until(
    bootstrap: str, stop: threading.Event, sent: list[Coord], *, seed: int, pace: float
) -> None:
    """Produce the demo feed every ``pace`` s until ``stop``; acked coordinates go to ``sent``.

    A send the broker never acknowledged (it was down) is not an input, so it is not counted.
    """
    rng = random.Random(seed)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        while not stop.is_set():
            topic, key, value, headers = make_record(rng)
            try:
                meta = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
            except KafkaError:
                continue
            sent.append((topic, meta.partition, meta.offset))
            await asyncio.sleep(pace)
    finally:
        await producer.stop()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_broker_restart_mid_stream_loses_nothing(
    kafka_stack: EmbeddedStack, tmp_path: Path, how: str
) -> None:
    stack = kafka_stack
    worker = spawn_worker(stack, tmp_path, "restart-worker")
    backlog = asyncio.run(produce_feed(stack.bootstrap, 1000, seed=21, client={}))
    # A live feed runs across the outage, so the worker is mid-stream when the broker goes.
    live: list[Coord] = []
    stop = threading.Event()
    feed = threading.Thread(
        target=lambda: asyncio.run(produce_until(stack.bootstrap, stop, live, seed=22, pace=0.01)),
        daemon=True,
    )
    feed.start()
    try:
        seen, _ = asyncio.run(
            read_outputs(stack.bootstrap, set(backlog[:10]), client={}, timeout=90)
        )
        assert set(backlog[:10]) <= seen.keys(), "the worker forwarded nothing before the stop"
        port, live_before = stack.broker_port, len(live)
        if how == "sigterm":
            assert stack.stop_broker() is not None
        else:
            stack.kill_broker()
        time.sleep(3.0)  # the worker and the feed find the broker gone
        stack.start_broker()
        assert stack.broker_port == port
        time.sleep(5.0)
    finally:
        stop.set()
        feed.join(timeout=60)
    assert live_before > 0 and len(live) > live_before, "the feed did not run across the outage"
    # The log survived: every acknowledged record is still there.
    assert asyncio.run(count_records(stack.bootstrap, SOURCES)) >= len(backlog) + len(live)
    want = set(backlog) | set(live)
    seen, _ = asyncio.run(read_outputs(stack.bootstrap, want, client={}, timeout=240))
    lost = want - seen.keys()
    assert not lost, f"{len(lost)} of {len(want)} records neither forwarded nor quarantined"
    assert worker.poll() is None, "the worker died instead of reconnecting"
