"""Benchmark: zoneapp against its baselines, all in one run on the embedded stack.

``python -m bench [--records N] [--full] [--broker tansu|kafka] [--workdir DIR]``
(``make bench``). Every case gets a fresh stack (broker, Redis, SoftHSM) and the
same records (``zoneapp.stack.demo.make_payment``, fixed seed):

1. **raw**: aiokafka consume -> produce, no Faust (bench/raw.py): the ceiling;
2. **naive**: ``async for value in stream: await dest.send(value=value)`` on Faust's
   defaults (bench/naive.py);
3. **fair**: zoneapp's worker, batch loop, guard and sink with an identity sanitizer
   (bench/fair.py): zoneapp / fair is the cost of sanitizing alone;
4. **zoneapp**: the shipped ecommerce policy, boundary ``payments-to-confidential``.

Throughput: N records are produced first, then the worker starts and drains them;
records/s is timed between the first and the last output record. Latency: with
the worker running, records are produced at half the case's own measured rate;
latency is output receipt time minus the send time of the input record (p50, p95,
p99). Then: the stage profile (bench/profiled.py, the guard's observer hooks),
1 and 2 workers on 4 partitions with the workers' RSS after each chunk of records
(``--full``: 1M records for the 1-worker run), Presidio's pattern recognizers on
the same records in process (bench/peer.py), and in-process figures of the
sanitizer, the tokenizer, the vault and the DLP scan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from bench.stats import rate, ratio, summary
from zoneapp.stack.demo import make_payment
from zoneapp.stack.embedded import EmbeddedStack, run_sync
from zoneapp.stack.kafka import create_topics
from zoneapp.stack.process import ManagedProcess, free_port
from zoneapp.stack.worker import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "deploy" / "policies" / "ecommerce.yaml"
BOUNDARY = "payments-to-confidential"
PAYMENTS = "restricted.payments"
OUTPUTS = ("confidential.payments", "restricted.quarantine")
RAW_IN, RAW_OUT = "bench.in", "bench.out"
#: Latency runs are at least this many records, at most LATENCY_MAX.
LATENCY_MIN, LATENCY_MAX = 1_000, 20_000
#: --latency-rate and --fetch-wait-ms (None: half the measured maximum; the stack's).
LATENCY_RATE: float | None = None
FETCH_WAIT_MS: int | None = None

Payload = tuple[bytes, bytes, list[tuple[str, bytes]]]


@dataclass
class Result:
    name: str
    records: int
    throughput: float
    latency: dict[str, float] = field(default_factory=dict)
    latency_rate: float = math.nan
    totals: dict[str, int] = field(default_factory=dict)


@dataclass
class Case:
    name: str
    source: str
    outputs: Sequence[str]
    app: str | None = None  # a Faust app module; None: bench/raw.py
    env: dict[str, str] = field(default_factory=dict)


CASES = (
    Case("raw", RAW_IN, [RAW_OUT]),
    Case("naive", RAW_IN, [RAW_OUT], app="bench.naive"),
    Case("fair", PAYMENTS, OUTPUTS, app="bench.fair", env={"ZONEAPP_BOUNDARIES": BOUNDARY}),
    Case("zoneapp", PAYMENTS, OUTPUTS, app="zoneapp", env={"ZONEAPP_BOUNDARIES": BOUNDARY}),
)


def payloads(n: int, seed: int) -> list[Payload]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        key, value, headers = make_payment(rng)
        out.append((key, json.dumps(value, separators=(",", ":")).encode(), headers))
    return out


async def produce(
    bootstrap: str, topic: str, records: Sequence[Payload], per_s: float | None
) -> dict[bytes, float]:
    """Send ``records`` (at ``per_s`` records/s, or as fast as possible); returns each
    value's send time (time.time())."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=1 if per_s else 10,
        max_batch_size=1_048_576,
        acks=1,
    )
    sent: dict[bytes, float] = {}
    await producer.start()
    try:
        started = time.monotonic()
        for i, (key, value, headers) in enumerate(records):
            if per_s:
                delay = started + i / per_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            now = time.time()
            sent[value] = now
            await producer.send(
                topic, value=value, key=key, headers=headers, timestamp_ms=int(now * 1000)
            )
        await producer.flush()
    finally:
        await producer.stop()
    return sent


class Collector:
    """Reads output topics from their current end; keeps (receipt time, send time)."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        processes: Sequence[ManagedProcess] = (),
        sent: Callable[[ConsumerRecord[bytes, bytes]], float | None] | None = None,
    ) -> None:
        self.processes = processes
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
            max_partition_fetch_bytes=8_388_608,
        )
        self.topics = topics
        self.sent = sent
        self.seen: list[tuple[float, float]] = []

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        tps = [
            TopicPartition(t, p)
            for t in self.topics
            for p in sorted(self.consumer.partitions_for_topic(t) or {0})
        ]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before anything is produced
            await self.consumer.position(tp)

    async def until(self, expected: int, timeout: float) -> list[tuple[float, float]]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < expected and time.monotonic() < deadline:
            for p in self.processes:
                p.check_alive()
            batch = await self.consumer.getmany(timeout_ms=50, max_records=20_000)
            now = time.time()
            for records in batch.values():
                for r in records:
                    at = self.sent(r) if self.sent else math.nan
                    if self.sent is None or at is not None:
                        self.seen.append((now, math.nan if at is None else at))
        return self.seen

    async def stop(self) -> None:
        await self.consumer.stop()


def send_time(
    sent: dict[bytes, float], since: float
) -> Callable[[ConsumerRecord[bytes, bytes]], float | None]:
    """The input's send time: by value (identity cases), else by the kept timestamp
    (zoneapp rewrites the value); records stamped before ``since`` are of an earlier phase."""

    def lookup(r: ConsumerRecord[bytes, bytes]) -> float | None:
        if r.value is not None and r.value in sent:
            return sent[r.value]
        if r.timestamp is not None and r.timestamp / 1000 >= since:
            return float(r.timestamp / 1000)
        return None  # a record of an earlier phase (redelivered)

    return lookup


def start_process(
    case: Case, stack: EmbeddedStack, workdir: Path, label: str, expect: int = 0
) -> ManagedProcess:
    env = {
        **stack.env(),
        **case.env,
        "ZONEAPP_DATADIR": str(workdir / f"data-{label}"),
        "BENCH_IN": RAW_IN,
        "BENCH_OUT": RAW_OUT,
        "BENCH_PROFILE": str(workdir / f"{label}.profile.json"),
    }
    if FETCH_WAIT_MS is not None:
        env["ZONEAPP_FETCH_MAX_WAIT_MS"] = str(FETCH_WAIT_MS)
    if case.app is None:
        wait = env.get("ZONEAPP_FETCH_MAX_WAIT_MS", "1500")
        argv = [sys.executable, "-m", "bench.raw", "--bootstrap", stack.bootstrap]
        argv += ["--source", case.source, "--dest", case.outputs[0], "--fetch-max-wait-ms", wait]
        argv += ["--expect", str(expect)]
        proc = ManagedProcess(
            label,
            argv,
            log_path=workdir / f"{label}.log",
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
        )
    else:
        proc = WorkerProcess(
            env,
            log_path=workdir / f"{label}.log",
            web_port=free_port(),
            app=case.app,
            loglevel="warn",
            cwd=ROOT,
            name=label,
        )
    proc.start()
    return proc


def fresh_stack(workdir: Path, label: str, broker: str) -> EmbeddedStack:
    stack = EmbeddedStack(workdir / f"stack-{label}", POLICY, broker=broker)
    stack.start()
    run_sync(create_topics(stack.bootstrap, [RAW_IN, RAW_OUT], partitions=stack.partitions))
    return stack


def raw_rate(proc: ManagedProcess, timeout: float = 30.0) -> float:
    """bench/raw.py's own timing of the drain (see its ``--expect``)."""
    from bench.raw import TIMED

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.log_text().splitlines():
            if TIMED in line:
                timed = json.loads(line)
                return float(timed[TIMED] / timed["seconds"])
        time.sleep(0.1)
    return math.nan


def totals(proc: ManagedProcess) -> dict[str, int]:
    """The worker's last ``zoneapp totals`` line (HSM calls, vault round trips)."""
    found = re.findall(r"zoneapp totals: (.*)", proc.log_text())
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])} if found else {}


def run_case(
    case: Case,
    broker: str,
    workdir: Path,
    records: list[Payload],
    latency_seconds: float,
    seed: int,
) -> Result:
    label = case.name
    n = len(records)
    stack = fresh_stack(workdir, label, broker)
    proc: ManagedProcess | None = None
    try:
        print(f"[{label}] producing {n} records …", flush=True)
        run_sync(produce(stack.bootstrap, case.source, records, None))

        async def measure() -> Result:
            nonlocal proc
            drain = Collector(stack.bootstrap, case.outputs)
            await drain.start()
            proc = start_process(case, stack, workdir, label, expect=n)
            drain.processes = [proc]
            try:
                seen = await drain.until(n, timeout=600)
            finally:
                await drain.stop()
            if len(seen) < n:
                raise SystemExit(f"[{label}] only {len(seen)} of {n} came out; see {proc.log_path}")
            throughput = rate(n, seen[0][0], seen[-1][0])
            if case.app is None:
                throughput = raw_rate(proc)
            per_s = LATENCY_RATE or (
                max(50.0, throughput / 2) if throughput == throughput else 500.0
            )
            count = int(min(LATENCY_MAX, max(LATENCY_MIN, per_s * latency_seconds)))
            paced_records = payloads(count, seed + 1)
            print(f"[{label}] {throughput:.0f} records/s; latency: {count} at {per_s:.0f}/s …")
            sent: dict[bytes, float] = {v: math.nan for _, v, _ in paced_records}
            since = time.time() - 0.001
            paced = Collector(stack.bootstrap, case.outputs, [proc], send_time(sent, since))
            await paced.start()
            try:
                waiting = asyncio.ensure_future(paced.until(count, timeout=300))
                sent.update(await produce(stack.bootstrap, case.source, paced_records, per_s))
                lat = await waiting
            finally:
                await paced.stop()
            ms = [(t - at) * 1000 for t, at in lat if not math.isnan(at)]
            return Result(label, n, throughput, summary(ms), per_s)

        result = run_sync(measure())
    finally:
        if proc is not None:
            proc.stop()
        stack.stop()
    if proc is not None:
        result.totals = totals(proc)
    return result


def run_profile(broker: str, workdir: Path, records: list[Payload]) -> dict[str, float] | None:
    """The zoneapp case again, drained by bench.profiled: µs per record and stage."""
    from bench.profiled import per_record_us

    label = "profile"
    case = Case(
        label, PAYMENTS, OUTPUTS, app="bench.profiled", env={"ZONEAPP_BOUNDARIES": BOUNDARY}
    )
    stack = fresh_stack(workdir, label, broker)
    proc: ManagedProcess | None = None
    out = workdir / f"{label}.profile.json"
    try:
        print(f"[{label}] producing {len(records)} records …", flush=True)
        run_sync(produce(stack.bootstrap, case.source, records, None))

        async def drain() -> None:
            nonlocal proc
            collector = Collector(stack.bootstrap, case.outputs)
            await collector.start()
            proc = start_process(case, stack, workdir, label)
            collector.processes = [proc]
            try:
                await collector.until(len(records), timeout=600)
            finally:
                await collector.stop()

        run_sync(drain())
        deadline = time.monotonic() + 10
        snapshot: dict[str, Any] = {"records": 0}
        while time.monotonic() < deadline:  # the observer writes after every batch
            if out.is_file():
                snapshot = json.loads(out.read_text())
                if snapshot["records"] >= len(records):
                    break
            time.sleep(0.2)
    finally:
        if proc is not None:
            proc.stop()
        stack.stop()
    if snapshot["records"] < len(records):
        print(f"[{label}] warning: the profile covers {snapshot['records']} records only")
    return per_record_us(snapshot) if snapshot["records"] else None


def _proc_status(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of a process, from /proc."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


@dataclass
class Chunk:
    done: int  # records through the workers so far
    throughput: float
    rss_mib: list[float]
    cpu_s: list[float]


def run_scale(
    broker: str, workdir: Path, workers: int, chunk: int, chunks: int, seed: int
) -> list[Chunk]:
    """zoneapp with ``workers`` workers on 4 partitions, fed ``chunks`` bursts of
    ``chunk`` new records once the group is settled; throughput and RSS per chunk."""
    label = f"scale-{workers}"
    case = Case(label, PAYMENTS, OUTPUTS, app="zoneapp", env={"ZONEAPP_BOUNDARIES": BOUNDARY})
    stack = fresh_stack(workdir, label, broker)
    procs: list[ManagedProcess] = []
    out: list[Chunk] = []
    try:
        for i in range(workers):
            procs.append(start_process(case, stack, workdir, f"{label}-w{i + 1}"))

        async def feed(batch: list[Payload], timeout: float) -> list[tuple[float, float]]:
            collector = Collector(stack.bootstrap, case.outputs, procs)
            await collector.start()
            try:
                waiting = asyncio.ensure_future(collector.until(len(batch), timeout=timeout))
                await produce(stack.bootstrap, case.source, batch, None)
                return await waiting
            finally:
                await collector.stop()

        # Settle the group: warm-up rounds until two in a row come out within 2 s
        # (a rebalance on tansu stalls a round for several seconds).
        settled, warmups = 0, 0
        while settled < 2:
            if warmups == 30:
                raise SystemExit(f"[{label}] the group did not settle; see the workers' logs")
            warm = payloads(400, seed + 1000 + warmups)
            started = time.monotonic()
            if len(run_sync(feed(warm, timeout=120))) < len(warm):
                raise SystemExit(f"[{label}] warm-up records did not come out; see the logs")
            settled = settled + 1 if time.monotonic() - started < 2.0 else 0
            warmups += 1
        print(f"[{label}] group settled after {warmups} warm-up rounds", flush=True)
        done = 0
        for k in range(chunks):
            batch = payloads(chunk, seed + 2000 + k)
            before = [_proc_status(p.pid or 0)[1] for p in procs]
            seen = run_sync(feed(batch, timeout=600))
            if len(seen) < chunk:
                raise SystemExit(f"[{label}] chunk {k + 1}: {len(seen)} of {chunk} came out")
            done += chunk
            status = [_proc_status(p.pid or 0) for p in procs]
            out.append(
                Chunk(
                    done,
                    rate(len(seen), seen[0][0], seen[-1][0]),
                    [s[0] for s in status],
                    [s[1] - b for s, b in zip(status, before, strict=True)],
                )
            )
            last = out[-1]
            print(
                f"[{label}] {done} records: {last.throughput:.0f}/s, RSS "
                + ", ".join(f"{r:.0f}" for r in last.rss_mib)
                + " MiB",
                flush=True,
            )
    finally:
        for p in procs:
            p.stop()
        stack.stop()
    return out


def micro(records: list[Payload]) -> dict[str, float]:
    """The sanitizer and tokenizer alone, in process, with real in-memory AES-GCM keys."""
    from zoneapp.core.sanitizer import BoundarySanitizer, RawRecord
    from zoneapp.keys.envelope import KeyRing
    from zoneapp.keys.memory import MemoryKeyProvider
    from zoneapp.policy import load_policy
    from zoneapp.transforms import RecordContext, TransformSpec, build_transform
    from zoneapp.vault import StoredTokenCache

    async def go() -> dict[str, float]:
        provider = MemoryKeyProvider()
        await provider.provision(["restricted"])
        await provider.open(["restricted"])
        ring = KeyRing(provider, ["restricted"])
        policy = load_policy(POLICY)
        sanitizer = BoundarySanitizer(policy, policy.boundary(BOUNDARY))
        for zone, purpose in sanitizer.hmac_purposes():
            ring.require_hmac(zone, purpose)
        tok = build_transform("tokenize", {}, TransformSpec("email", "email", "restricted"))
        for purpose in tok.hmac_purposes:
            ring.require_hmac("restricted", purpose)
        await ring.prepare()
        raws = [RawRecord(PAYMENTS, 0, i, k, v, h, 0) for i, (k, v, h) in enumerate(records)]
        started = time.perf_counter()
        for r in raws:
            sanitizer.sanitize(r, ring)
        per_record = (time.perf_counter() - started) / len(raws)
        ctx = RecordContext(keyring=ring, zone="restricted", topic="t", tenant="acme")
        values = [f"user{i}@example.com" for i in range(20_000)]
        started = time.perf_counter()
        for v in values:
            tok.apply(v, ctx)
        tok_new = len(values) / (time.perf_counter() - started)
        known = StoredTokenCache()
        for e in ctx.vault_entries:
            known.add(e.tenant, e.token, e.fingerprint)
        ctx2 = RecordContext(
            keyring=ring, zone="restricted", topic="t", tenant="acme", stored_tokens=known
        )
        started = time.perf_counter()
        for v in values:
            tok.apply(v, ctx2)
        tok_known = len(values) / (time.perf_counter() - started)
        return {
            "sanitize_us": per_record * 1e6,
            "tokenize_new_per_s": tok_new,
            "tokenize_known_per_s": tok_known,
        }

    return run_sync(go())


def vault_bench(workdir: Path, broker: str, n: int = 20_000) -> float:
    """Vault writes per second to the real Redis, pipelined per 500-entry batch."""
    from zoneapp.transforms import VaultEntry
    from zoneapp.vault.redis import RedisTokenVault

    stack = EmbeddedStack(workdir / "stack-vault", POLICY, broker=broker)
    stack.start()

    async def go() -> float:
        vault = RedisTokenVault(stack.vault_url)
        entries = [
            VaultEntry("acme", "email", f"tok_bench{i:08d}", f"fp{i}", "zenc2.AAAA")
            for i in range(n)
        ]
        started = time.perf_counter()
        for i in range(0, n, 500):
            await vault.store(entries[i : i + 500])
        per_s = n / (time.perf_counter() - started)
        await vault.close()
        return per_s

    try:
        return run_sync(go())
    finally:
        stack.stop()


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"load average at the end {load}"
    )


def _fmt(x: float, spec: str = ".0f") -> str:
    return "-" if math.isnan(x) else format(x, spec)


def report(
    results: dict[str, Result],
    profile: dict[str, float] | None,
    scale: dict[int, list[Chunk]],
    peer: dict[str, float],
    figures: dict[str, float],
    vault_rate: float,
    fetch_wait: str,
) -> None:
    print("\n== zoneapp benchmark (python -m bench) ==")
    print(f"machine: {machine()}")
    print(f"broker: {fetch_wait}")
    print(f"\n{'case':<10}{'records':>9}{'records/s':>11}{'vs naive':>10}{'vs fair':>9}"
          f"{'lat. at/s':>11}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}")  # fmt: skip
    naive = results["naive"].throughput if "naive" in results else math.nan
    fair = results["fair"].throughput if "fair" in results else math.nan
    for r in results.values():
        lat = r.latency
        print(
            f"{r.name:<10}{r.records:>9}{_fmt(r.throughput):>11}"
            f"{_fmt(ratio(r.throughput, naive), '.2f'):>10}"
            f"{_fmt(ratio(r.throughput, fair), '.2f'):>9}"
            f"{_fmt(r.latency_rate):>11}{_fmt(lat.get('p50', math.nan), '.1f'):>8}"
            f"{_fmt(lat.get('p95', math.nan), '.1f'):>8}{_fmt(lat.get('p99', math.nan), '.1f'):>8}"
        )
    zone = results.get("zoneapp")
    if zone is not None:
        raw = results.get("raw")
        if raw is not None:
            print(f"zoneapp / raw aiokafka ceiling: {ratio(zone.throughput, raw.throughput):.2f}")
        if "p99" in zone.latency and raw is not None and "p99" in raw.latency:
            print(
                f"zoneapp p99 latency added over raw aiokafka: "
                f"{zone.latency['p99'] - raw.latency['p99']:.1f} ms"
            )
        t = zone.totals
        if t:
            total = zone.records
            print(
                f"HSM calls: {t.get('hsm_calls', 0)} in all "
                f"({t.get('hsm_calls_after_first_batch', 0)} after the first batch); "
                f"Redis round trips: {t.get('vault_round_trips', 0)}; "
                f"vault writes: {t.get('vault_writes', 0)} (for {total}+ records)"
            )
    if peer:
        print(
            f"\nPresidio (pattern recognizers + anonymizer, in process, {peer['records']:.0f} "
            f"records): {peer['per_s']:.1f} records/s = {1e6 / peer['per_s']:.0f} µs/record"
        )
        if zone is not None:
            print(f"zoneapp worker vs Presidio in process: {zone.throughput / peer['per_s']:.0f}x")
        print(
            f"zoneapp sanitizer vs Presidio, both in process: "
            f"{1e6 / figures['sanitize_us'] / peer['per_s']:.0f}x"
        )
    if profile is not None:
        print("\nstage profile, zoneapp (µs per record, observer hooks, bench/profiled.py):")
        for stage, us in profile.items():
            if stage != "records per batch":
                print(f"  {stage:<22}{us:>8.1f}")
        print(
            f"  (= {1e6 / profile['total']:.0f} records/s at this total; "
            f"{profile['records per batch']:.0f} records per batch on average)"
        )
    if scale:
        print("\nworkers on 4 partitions (zoneapp, bursts once the group settled):")
        for workers, chunks in scale.items():
            rates = [c.throughput for c in chunks]
            cpu = [sum(c.cpu_s[i] for c in chunks) for i in range(workers)]
            print(
                f"  {workers} worker(s): median {statistics.median(rates):.0f} records/s "
                f"over {len(chunks)} chunk(s); CPU s per worker: "
                + ", ".join(f"{c:.1f}" for c in cpu)
            )
        if 1 in scale and 2 in scale:
            one = statistics.median(c.throughput for c in scale[1])
            two = statistics.median(c.throughput for c in scale[2])
            print(f"  2 workers / 1 worker: {two / one:.2f} (2 cores: workers, broker, bench)")
        if 1 in scale:
            series = scale[1]
            print("  worker RSS (1 worker) after N records: " + ", ".join(
                f"{c.done:,}: {c.rss_mib[0]:.0f} MiB" for c in series
            ))  # fmt: skip
            if len(series) >= 3:
                half = series[len(series) // 2]
                growth = series[-1].rss_mib[0] - half.rss_mib[0]
                print(
                    f"  RSS growth over the second half ({half.done:,} -> "
                    f"{series[-1].done:,}): {growth:+.0f} MiB"
                )
    print()
    print(f"sanitizer alone: {figures['sanitize_us']:.1f} µs/record (in process, no broker)")
    print(
        f"tokenize: {figures['tokenize_new_per_s']:.0f}/s new values, "
        f"{figures['tokenize_known_per_s']:.0f}/s known values"
    )
    print(f"vault writes (real Redis, pipelined): {vault_rate:.0f}/s")


def main(argv: Sequence[str] | None = None) -> None:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog="python -m bench", description=doc.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per throughput run")
    parser.add_argument(
        "--latency-seconds", type=float, default=4.0, help="length of each latency run"
    )
    parser.add_argument(
        "--memory-records",
        type=int,
        default=60_000,
        help="records through the 1-worker run, in chunks of --records (RSS after each)",
    )
    parser.add_argument("--full", action="store_true", help="1,000,000 records for the RSS run")
    parser.add_argument("--peer-records", type=int, default=300, help="records for Presidio")
    parser.add_argument(
        "--latency-rate", type=float, help="records/s of the latency runs (default: half the max)"
    )
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        help="the workers' ZONEAPP_FETCH_MAX_WAIT_MS (default: what the stack sets)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--broker", default="tansu", choices=("tansu", "kafka"))
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated parts to run: raw,naive,fair,zoneapp,profile,scale,peer,micro",
    )
    parser.add_argument("--workdir", help="keep logs and data here instead of a temporary folder")
    args = parser.parse_args(argv)
    if args.full:
        args.memory_records = 1_000_000
    global LATENCY_RATE, FETCH_WAIT_MS
    LATENCY_RATE, FETCH_WAIT_MS = args.latency_rate, args.fetch_wait_ms
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    known = {"raw", "naive", "fair", "zoneapp", "profile", "scale", "peer", "micro"}
    if parts - known:
        parser.error(f"--only takes {', '.join(sorted(known))}")
    wanted = parts or known
    records = payloads(args.records, args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zoneapp-bench-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        from zoneapp.stack.embedded import TANSU_FETCH_MAX_WAIT_MS

        wait = FETCH_WAIT_MS or (TANSU_FETCH_MAX_WAIT_MS if args.broker == "tansu" else None)
        fetch_wait = f"{args.broker}, zoneapp's fetch wait " + (
            f"{wait} ms (ZONEAPP_FETCH_MAX_WAIT_MS)" if wait else "Faust's 1500 ms"
        )
        results = {
            c.name: run_case(c, args.broker, workdir, records, args.latency_seconds, args.seed)
            for c in CASES
            if c.name in wanted
        }
        profile = run_profile(args.broker, workdir, records) if "profile" in wanted else None
        scale: dict[int, list[Chunk]] = {}
        if "scale" in wanted:
            chunks = max(1, args.memory_records // args.records)
            scale[1] = run_scale(args.broker, workdir, 1, args.records, chunks, args.seed)
            scale[2] = run_scale(args.broker, workdir, 2, args.records, 2, args.seed)
        peer: dict[str, float] = {}
        if "peer" in wanted:
            from bench.peer import PresidioPeer

            print(f"[peer] Presidio on {args.peer_records} records …", flush=True)
            peer = {
                "records": float(args.peer_records),
                "per_s": PresidioPeer().records_per_s(records[: args.peer_records]),
            }
        figures = micro(records[:5000])
        vault_rate = vault_bench(workdir, args.broker) if "micro" in wanted else math.nan
        report(results, profile, scale, peer, figures, vault_rate, fetch_wait)
        if "micro" in wanted:
            from bench import dlp

            dlp.report(dlp.figures())
    print(f"\nbench finished in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
