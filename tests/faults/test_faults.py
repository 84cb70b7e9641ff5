"""The fault suite (issue 10, item 3): break one thing mid-stream, then count.

Each scenario runs on a stack of its own. A producer batching like a real client
(``linger_ms=20``) feeds realistic payment records from the demo generator; mid-stream
one thing breaks; then the scenario counts, from the topics, with a checker of its own:

- **lost**: produced source offsets with no output (destination or quarantine);
- **duplicated**: outputs beyond the first for one source offset;
- **unsanitized**: a produced record's card number, SSN, IBAN or e-mail found in any
  forwarded value, key or header (raw substring; a card or SSN also as the digits of
  one run grouped by spaces, dots, slashes or dashes);
- **recovery**: seconds from the end of the fault until every record has an output.

It prints one line per scenario and asserts lost = 0 and unsanitized = 0. ``make test``
runs the short form (400 records, one run each); ``make faults`` the full one
(``ZONEAPP_FAULTS=full``: 4,000 records, ten kill-and-restart runs).

The HSM and the network faults are real ones: SoftHSM's token directory taken away,
and every broker connection aborted by a TCP proxy the broker advertises
(``tests/faults/proxy.py``).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.integration.conftest import EXAMPLE_POLICY, require_prerequisites, spawn_worker
from tests.waiting import wait_for
from zoneapp.ops.reconcile import reconcile
from zoneapp.policy import load_policy
from zoneapp.settings import Settings
from zoneapp.stack import EmbeddedStack, WorkerProcess, free_port
from zoneapp.stack.demo import make_payment
from zoneapp.stack.kafka import partition_counts

from .proxy import TcpProxy

pytestmark = pytest.mark.integration

FULL = os.environ.get("ZONEAPP_FAULTS") == "full"
RECORDS = 4_000 if FULL else 400
KILL_RUNS = 10 if FULL else 1
SOURCE = "restricted.payments"
OUTPUTS = ("confidential.payments", "restricted.quarantine")
BOUNDARY = "payments-to-confidential"
ENV = {"ZONEAPP_BOUNDARIES": BOUNDARY}


@dataclass
class Feed:
    """What the feed wrote: every (partition, offset) of the source log, and the
    planted values. ``acked`` is what the producer saw acknowledged; the log may hold
    more, since a producer that retries after a lost acknowledgement (a network cut)
    writes a second copy, and the boundary must handle that record too."""

    offsets: set[tuple[int, int]] = field(default_factory=set)
    acked: set[tuple[int, int]] = field(default_factory=set)
    secrets: set[bytes] = field(default_factory=set)


async def produce(stack: EmbeddedStack, count: int, seed: int, feed: Feed, rate: float) -> None:
    rng = random.Random(seed)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=20, acks="all")
    await producer.start()
    try:
        futures = []
        for i in range(count):
            key, value, headers = make_payment(rng)
            body = orjson.dumps(value)
            for name in ("card_number", "ssn"):
                if isinstance(value.get(name), str):
                    feed.secrets.add("".join(c for c in value[name] if c.isdigit()).encode())
            email = value.get("customer", {}).get("email")
            if email:
                feed.secrets.add(email.encode())
            iban = (value.get("billing") or {}).get("iban")
            if iban:
                feed.secrets.add(iban.encode())
            futures.append(await producer.send(SOURCE, body, key=key, headers=headers))
            if rate and i % 20 == 19:
                await asyncio.sleep(20 / rate)
        for future in futures:
            meta = await future
            feed.acked.add((meta.partition, meta.offset))
    finally:
        await producer.stop()
    feed.offsets = feed.acked | await source_offsets(stack)
    if len(feed.offsets) != count:
        print(f"      feed: {count} sent, {len(feed.offsets)} records in {SOURCE} (retries)")


async def source_offsets(stack: EmbeddedStack) -> set[tuple[int, int]]:
    """Every (partition, offset) in the source topic, read back from the broker."""
    counts = await partition_counts(stack.bootstrap, [SOURCE])
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(SOURCE, p) for p in range(counts.get(SOURCE, 0))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: set[tuple[int, int]] = set()
        pending = set(tps)
        while pending:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                found.update((tp.partition, r.offset) for r in records)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return found
    finally:
        await consumer.stop()


async def outputs(stack: EmbeddedStack) -> tuple[Counter[tuple[int, int]], list[bytes]]:
    """Lineage of every output of the boundary, and the forwarded bytes to search."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=None)
    await consumer.start()
    seen: Counter[tuple[int, int]] = Counter()
    forwarded: list[bytes] = []
    try:
        counts = await partition_counts(stack.bootstrap, list(OUTPUTS))
        tps = [TopicPartition(t, p) for t in OUTPUTS for p in range(counts.get(t, 0))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done: set[TopicPartition] = set()
        while len(done) < len(tps):
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for r in records:
                    h = {k: bytes(v) for k, v in r.headers}
                    if h.get("zoneapp-boundary") != BOUNDARY.encode():
                        continue
                    seen[(int(h["zoneapp-source-partition"]), int(h["zoneapp-source-offset"]))] += 1
                    if tp.topic == OUTPUTS[0]:
                        parts = [r.value or b"", r.key or b"", *(bytes(v) for _, v in r.headers)]
                        forwarded += [*parts, *(run for p in parts for run in digit_runs(p))]
            for tp in tps:
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    done.add(tp)
    finally:
        await consumer.stop()
    return seen, forwarded


@dataclass
class Outcome:
    name: str
    produced: int
    forwarded_or_quarantined: int
    lost: int
    duplicated: int
    unsanitized: int
    recovery_s: float

    def line(self) -> str:
        return (
            f"fault {self.name:<28} produced={self.produced} handled="
            f"{self.forwarded_or_quarantined} lost={self.lost} duplicated={self.duplicated} "
            f"unsanitized={self.unsanitized} recovery={self.recovery_s:.1f}s"
        )


def settle(stack: EmbeddedStack, feed: Feed, since: float, name: str, timeout: float) -> Outcome:
    deadline = time.monotonic() + timeout
    while True:
        seen, forwarded = asyncio.run(outputs(stack))
        missing = feed.offsets - set(seen)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    recovered = time.monotonic() - since
    outcome = Outcome(
        name,
        len(feed.offsets),
        len(feed.offsets & set(seen)),
        len(missing),
        sum(n - 1 for n in seen.values() if n > 1),
        leaked(feed.secrets, forwarded),
        recovered,
    )
    print(outcome.line())
    return outcome


_DIGIT_RUN = re.compile(rb"[0-9](?:[ ./-]?[0-9])+")


def digit_runs(part: bytes) -> list[bytes]:
    """The digits of each run of digits in ``part`` (grouped by single spaces, dots,
    slashes or dashes, as the feed writes cards and SSNs in free text), one run each.
    A run, not all the digits of a record: a 9-digit SSN turns up by chance in the
    digits of a whole record's dates, amounts and ids (measured: 1 in 10 full runs)."""
    return [bytes(c for c in m.group() if 48 <= c <= 57) for m in _DIGIT_RUN.finditer(part)]


def leaked(secrets: set[bytes], parts: list[bytes]) -> int:
    """How many of the produced secrets occur, as they were written, in any forwarded
    part (or are a whole digit run of one): one literal multi-pattern pass (Hyperscan as
    a plain string matcher, none of zoneapp's detectors), since 4,000 secrets times every
    part is minutes in Python."""
    import hyperscan

    ordered = sorted(secrets)
    if not ordered:
        return 0
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(
        expressions=[
            (b"^" + re.escape(s) + b"$") if s.isdigit() else re.escape(s) for s in ordered
        ],
        ids=list(range(len(ordered))),
        flags=[hyperscan.HS_FLAG_MULTILINE] * len(ordered),
    )
    found: set[int] = set()

    def on_match(id_: int, start: int, end: int, flags: int, context: object) -> None:
        found.add(id_)

    db.scan(b"\n".join(parts), match_event_handler=on_match)
    return len(found)


def run_feed_with(
    stack: EmbeddedStack, breaking: Callable[[], None], seed: int
) -> tuple[Feed, float]:
    """Produce the feed at 200 records/s in a thread while ``breaking`` runs."""
    feed = Feed()

    async def main() -> float:
        task = asyncio.create_task(produce(stack, RECORDS, seed, feed, rate=200))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(breaking)
        ended = time.monotonic()
        await task
        return ended

    return feed, asyncio.run(main())


def reconciled(stack: EmbeddedStack, feed: Feed) -> None:
    """``reconcile``, what an operator runs, agrees with the suite's own count, once the
    workers' commits cover the feed (until then, a restarted worker may still be
    redelivering, and both counts move)."""
    settings = Settings.from_env({**os.environ, **stack.env()})
    policy = load_policy(settings.policy_path)

    def caught_up() -> dict[str, Any] | None:
        ledger = asyncio.run(reconcile(policy, settings, boundaries=[BOUNDARY]))
        summary = ledger.summary()
        return summary if summary["source_records"] == len(feed.offsets) else None

    summary = wait_for(caught_up, 120, "the workers' commits to cover the feed")
    seen, _ = asyncio.run(outputs(stack))
    ours = (len(feed.offsets - set(seen)), len(feed.offsets & set(seen)),
            sum(n - 1 for n in seen.values() if n > 1))  # fmt: skip
    theirs = (summary["missing"], summary["forwarded"] + summary["quarantined"],
              summary["duplicated"])  # fmt: skip
    print(f"      reconcile: missing={theirs[0]} handled={theirs[1]} duplicated={theirs[2]}")
    assert theirs == ours


def verify(stack: EmbeddedStack, feed: Feed, ended: float, name: str) -> None:
    """Count, assert lost = 0 and unsanitized = 0, and check reconcile agrees."""
    outcome = settle(stack, feed, ended, name, 180)
    assert outcome.lost == 0, outcome.line()
    assert outcome.unsanitized == 0, outcome.line()
    reconciled(stack, feed)


@pytest.mark.parametrize("run", range(KILL_RUNS))
def test_worker_sigkilled_and_restarted(
    private_stack: EmbeddedStack, tmp_path: Path, run: int
) -> None:
    worker = spawn_worker(private_stack, tmp_path, f"kill-{run}-a", ENV)

    def kill_and_restart() -> None:
        time.sleep(1.0)
        worker.kill()
        worker.stop(timeout=10)
        spawn_worker(private_stack, tmp_path, f"kill-{run}-b", ENV)

    feed, ended = run_feed_with(private_stack, kill_and_restart, seed=100 + run)
    verify(private_stack, feed, ended, f"worker SIGKILL #{run + 1}")


def test_one_of_two_workers_sigkilled(private_stack: EmbeddedStack, tmp_path: Path) -> None:
    first = spawn_worker(private_stack, tmp_path, "pair-a", ENV, wait=False)
    second = spawn_worker(private_stack, tmp_path, "pair-b", ENV, wait=False)
    first.wait_ready(180)
    second.wait_ready(180)

    def kill_one() -> None:
        time.sleep(1.0)
        second.kill()

    feed, ended = run_feed_with(private_stack, kill_one, seed=7)
    verify(private_stack, feed, ended, "one of two workers SIGKILL")


def _redis(stack: EmbeddedStack) -> int:
    pid = stack.pid_of("redis")
    assert pid is not None
    return pid


def test_redis_frozen_for_10s(private_stack: EmbeddedStack, tmp_path: Path) -> None:
    spawn_worker(private_stack, tmp_path, "frozen", ENV)

    def freeze() -> None:
        pid = _redis(private_stack)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(10)
        finally:
            os.kill(pid, signal.SIGCONT)

    feed, ended = run_feed_with(private_stack, freeze, seed=8)
    verify(private_stack, feed, ended, "redis SIGSTOP 10s")


def test_redis_restarted_empty(private_stack: EmbeddedStack, tmp_path: Path) -> None:
    spawn_worker(private_stack, tmp_path, "emptied", ENV)

    def restart() -> None:
        time.sleep(1.0)
        private_stack.stop_redis()
        time.sleep(3)
        private_stack.start_redis()

    feed, ended = run_feed_with(private_stack, restart, seed=9)
    verify(private_stack, feed, ended, "redis restarted empty")


def test_hsm_unavailable_across_a_worker_restart(
    private_stack: EmbeddedStack, tmp_path: Path
) -> None:
    """The token made unavailable for 10 s (SoftHSM's token directory gone: what a
    removed or unreachable token looks like to the module), with the worker restarted
    inside the outage, so it must open its keys while the HSM is down. (A running
    worker works from the keys it unwrapped at start, ENVIRONMENT.md; a starting one
    has none, so it must hold its first batch, say so, and go on when the token is
    back.)"""
    tokens = private_stack.workdir / "softhsm" / "tokens"
    away = tokens.with_name("tokens.away")
    worker = spawn_worker(private_stack, tmp_path, "hsm-a", ENV)
    restarted: list[WorkerProcess] = []

    def outage() -> None:
        time.sleep(1.0)
        tokens.rename(away)
        try:
            worker.kill()
            worker.stop(timeout=10)
            starting = spawn_worker(private_stack, tmp_path, "hsm-b", ENV, wait=False)
            restarted.append(starting)
            wait_for(
                lambda: "unavailable (" in starting.log_path.read_text(errors="replace"),
                180,
                "the restarted worker to hold its first batch for the HSM",
            )
            time.sleep(10)
        finally:
            away.rename(tokens)

    feed, ended = run_feed_with(private_stack, outage, seed=10)
    verify(private_stack, feed, ended, "HSM token gone 10s")
    log = restarted[0].log_path.read_text(errors="replace")
    assert "holding the batch, nothing is forwarded" in log
    assert "is back after" in log


def test_broker_unreachable_for_10s(tmp_path: Path) -> None:
    """Every connection to the broker cut for 10 s by a TCP proxy the broker advertises
    (so the workers, the feed and the checker all go through it), then restored."""
    require_prerequisites()
    broker, front = free_port(), free_port()
    with (
        TcpProxy(front, broker) as proxy,
        EmbeddedStack(
            tmp_path / "stack", EXAMPLE_POLICY, partitions=2, broker_port=broker,
            advertised_port=front,
        ) as stack,
    ):  # fmt: skip
        spawn_worker(stack, tmp_path, "cut", ENV)

        def cut() -> None:
            time.sleep(1.0)
            before = proxy.connections
            proxy.cut()
            time.sleep(10)
            proxy.restore()
            wait_for(lambda: proxy.connections > before, 60, "the clients to reconnect")

        feed, ended = run_feed_with(stack, cut, seed=11)
        verify(stack, feed, ended, "broker unreachable 10s")


def test_a_bad_policy_at_start_up_is_refused_with_its_place(
    private_stack: EmbeddedStack, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        EXAMPLE_POLICY.read_text().replace("transform: tokenize", "transform: tokenise", 1)
    )
    worker: WorkerProcess = spawn_worker(
        private_stack, tmp_path, "bad-policy", {**ENV, "ZONEAPP_POLICY": str(bad)}, wait=False
    )
    deadline = time.monotonic() + 120
    while worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert worker.poll() == 2
    text = worker.log_path.read_text(errors="replace")
    assert "zoneapp cannot start" in text and "tokenise" in text and str(bad) in text
    print("fault bad policy at start-up       refused: exit 2, names the file and the rule")
