"""Hot reload on the real stack: a worker survives a bad policy pushed while it runs, then
applies a good one, and its lineage headers say so; a candidate is shadowed on the live
traffic meanwhile.

The worker is ``faust -A zoneapp worker`` on the session's stack with its own consumer
group and a copy of the example policy it may rewrite. The bad policy arrives by SIGHUP,
the good one by the CLI (``faust -A zoneapp reload-policy``, which POSTs
``/policy/reload`` with an admin key).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.records import SENSITIVE, payment
from tests.waiting import wait_for
from zoneapp.stack import EmbeddedStack
from zoneapp.stack.worker import faust_command

from .conftest import REPO, RunWorker
from .web.conftest import http

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "deploy" / "policies" / "ecommerce.yaml"
TOPIC, OUT = "restricted.payments", "confidential.payments"
NOTES = "      notes: {transform: keep, class: confidential}"
ADMIN_KEY = "zk_reload-admin-" + uuid.uuid4().hex


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def produce(bootstrap: str, docs: list[dict[str, Any]]) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    try:
        ids = []
        for doc in docs:
            meta = await producer.send_and_wait(TOPIC, orjson.dumps(doc), key=b'"k"')
            ids.append(f"{TOPIC}/{meta.partition}/{meta.offset}")
        return ids
    finally:
        await producer.stop()


async def outputs(bootstrap: str, ids: list[str], timeout: float = 90.0) -> dict[str, Any]:
    """The forwarded records of these source record ids, by id."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[str, Any] = {}
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(OUT, p) for p in sorted(consumer.partitions_for_topic(OUT) or [])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(found) < len(ids):
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for r in records:
                    rid = dict(r.headers).get("zoneapp-record-id", b"").decode()
                    if rid in ids:
                        found[rid] = r
    finally:
        await consumer.stop()
    assert len(found) == len(ids), f"only {len(found)} of {len(ids)} forwarded"
    return found


def lineage(record: Any) -> tuple[str, str]:
    h = dict(record.headers)
    return h["zoneapp-policy-version"].decode(), h["zoneapp-policy-hash"].decode()


def metrics(port: int) -> str:
    status, _, body = http(port, "/metrics", ADMIN_KEY)
    assert status == 200, body[:200]
    return body.decode()


def test_a_worker_survives_a_bad_policy_and_applies_a_good_one(
    stack: EmbeddedStack, run_worker: RunWorker, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    policy_file = tmp_path / "policy.yaml"
    shutil.copy(EXAMPLE, policy_file)
    original = policy_file.read_text()
    candidate = original.replace(NOTES, "      notes: {transform: suppress}")
    (tmp_path / "candidate.yaml").write_text(candidate)
    keys = tmp_path / "api-keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "name": "reload-admin",
                        "sha256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest(),
                        "roles": ["admin", "viewer"],
                    }
                ]
            }
        )
    )
    worker = run_worker(
        {
            "ZONEAPP_POLICY": str(policy_file),
            "ZONEAPP_POLICY_CANDIDATE": str(tmp_path / "candidate.yaml"),
            "ZONEAPP_API_KEYS_FILE": str(keys),
            "ZONEAPP_APP_ID": f"reload-{run}",
        },
        boundaries="payments-to-confidential",
    )
    port, bootstrap = worker.web_port, stack.bootstrap

    def batch(tag: str) -> list[dict[str, Any]]:
        return [payment(payment_id=f"pay_{run}_{tag}_{i}", notes=f"note {i}") for i in range(3)]

    # 1. The start-up policy, with the candidate in shadow on the same records.
    first = asyncio.run(outputs(bootstrap, asyncio.run(produce(bootstrap, batch("a")))))
    for r in first.values():
        assert lineage(r) == ("2026.11.1", sha(original))
        assert "notes" in orjson.loads(r.value)

    def shadowed() -> Any:
        status, _, body = http(port, "/shadow", ADMIN_KEY)
        assert status == 200, body[:200]
        report = json.loads(body)
        [b] = report["boundaries"]
        return report if b["fields"]["would_drop"].get("notes", 0) >= 3 else None

    report = wait_for(shadowed, 60, "the shadow report of the first batch")
    assert report["candidate"]["sha256"] == sha(candidate)
    text = json.dumps(report)
    assert not any(value in text for value in SENSITIVE)

    # 2. A bad policy pushed while it runs: refused, logged with file and line, counted.
    bad = original.replace(
        "      payment_id: {transform: keep, class: internal}",
        "      payment_id: {transform: keep, class: restricted}",
    ).replace('version: "2026.11.1"', 'version: "2026.12.bad"')
    bad_line = 1 + bad.splitlines().index("      payment_id: {transform: keep, class: restricted}")
    policy_file.write_text(bad)
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGHUP)
    wait_for(
        lambda: "reload (SIGHUP) refused" in worker.log_path.read_text(),
        60,
        "the refused reload in the worker's log",
    )
    log = worker.log_path.read_text()
    assert f"{policy_file}:\n  - line {bad_line}, boundaries[0].fields.payment_id" in log
    assert "version 2026.11.1" in log and "stays active" in log
    assert 'zoneapp_policy_reload_failed{worker="' in metrics(port)
    assert any(
        line.startswith("zoneapp_policy_reload_failed{") and line.endswith(" 1")
        for line in metrics(port).splitlines()
    )
    # The CLI says the same, on stderr, and exits 1.
    key_file = tmp_path / "admin.key"
    key_file.write_text(ADMIN_KEY)
    refused = admin_command(stack, policy_file, key_file, port, "reload-policy", url=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr[-2000:]
    assert f"refused; active version 2026.11.1 (sha256 {sha(original)})" in refused.stderr
    assert f"line {bad_line}, boundaries[0].fields.payment_id" in refused.stderr
    worker.check_alive()
    second = asyncio.run(outputs(bootstrap, asyncio.run(produce(bootstrap, batch("b")))))
    for r in second.values():
        assert lineage(r) == ("2026.11.1", sha(original))  # the old policy still applies

    # 3. A good one, through the CLI: applied from the next batch, in the lineage headers.
    good = original.replace(NOTES, "      notes: {transform: suppress}").replace(
        'version: "2026.11.1"', 'version: "2026.12.1"'
    )
    policy_file.write_text(good)
    cli = admin_command(stack, policy_file, key_file, port, "reload-policy")
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert f"applied; active version 2026.12.1 (sha256 {sha(good)})" in cli.stdout
    assert ADMIN_KEY not in cli.stdout + cli.stderr + worker.log_path.read_text()
    third = asyncio.run(outputs(bootstrap, asyncio.run(produce(bootstrap, batch("c")))))
    for r in third.values():
        assert lineage(r) == ("2026.12.1", sha(good))
        assert "notes" not in orjson.loads(r.value)
    assert any(
        line.startswith("zoneapp_policy_reload_failed{") and line.endswith(" 0")
        for line in metrics(port).splitlines()
    )

    # 4. A new candidate, shadowed after a SIGHUP, then promoted with one command.
    promoted = good.replace(
        "      currency: {transform: keep, class: internal}",
        "      currency: {transform: suppress}",
    ).replace('version: "2026.12.1"', 'version: "2026.12.2"')
    (tmp_path / "candidate.yaml").write_text(promoted)
    os.kill(worker.pid, signal.SIGHUP)
    wait_for(lambda: "candidate 2026.12.2" in worker.log_path.read_text(), 60, "the new candidate")
    cli = admin_command(stack, policy_file, key_file, port, "promote-policy", sha(promoted))
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert f"applied; active version 2026.12.2 (sha256 {sha(promoted)})" in cli.stdout
    assert policy_file.read_text() == promoted  # a restart keeps it
    fourth = asyncio.run(outputs(bootstrap, asyncio.run(produce(bootstrap, batch("d")))))
    for r in fourth.values():
        assert lineage(r) == ("2026.12.2", sha(promoted))
        assert "currency" not in orjson.loads(r.value)
    worker.check_alive()


def admin_command(
    stack: EmbeddedStack,
    policy_file: Path,
    key_file: Path,
    port: int,
    *args: str,
    url: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``faust -A zoneapp <args> --key-file <admin key>``, as an operator runs it: with
    ``--url``, or (``url=False``) finding this host's worker from ZONEAPP_WEB_PORT."""
    where = ["--url", f"http://127.0.0.1:{port}"] if url else []
    return subprocess.run(
        [*faust_command(), "-A", "zoneapp", *args, *where, "--key-file", str(key_file)],
        env={
            **os.environ,
            **stack.env(),
            "ZONEAPP_POLICY": str(policy_file),
            "ZONEAPP_WEB_PORT": str(port),
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_watching_worker_applies_a_changed_file_by_itself(
    stack: EmbeddedStack, run_worker: RunWorker, tmp_path: Path
) -> None:
    """ZONEAPP_POLICY_WATCH_S: the worker polls its file; a bad file is refused once (not
    at every poll), a good one is applied without a signal or a command."""
    run = uuid.uuid4().hex[:8]
    policy_file = tmp_path / "policy.yaml"
    shutil.copy(EXAMPLE, policy_file)
    original = policy_file.read_text()
    keys = tmp_path / "api-keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "name": "watch-viewer",
                        "sha256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest(),
                        "roles": ["viewer"],
                    }
                ]
            }
        )
    )
    worker = run_worker(
        {
            "ZONEAPP_POLICY": str(policy_file),
            "ZONEAPP_POLICY_WATCH_S": "1",
            "ZONEAPP_API_KEYS_FILE": str(keys),
            "ZONEAPP_APP_ID": f"watch-{run}",
        },
        boundaries="payments-to-confidential",
    )
    policy_file.write_text(original.replace('version: "2026.11.1"', "version: [unclosed"))
    wait_for(lambda: "reload (watch) refused" in worker.log_path.read_text(), 60, "a refused watch")
    time.sleep(3)  # three polls: the same bad bytes are not refused (and logged) again
    assert worker.log_path.read_text().count("reload (watch) refused") == 1
    good = original.replace('version: "2026.11.1"', 'version: "2026.12.watch"')
    policy_file.write_text(good)

    def active() -> Any:
        status, _, body = http(worker.web_port, "/policy", ADMIN_KEY)
        assert status == 200, body[:200]
        [w] = json.loads(body)["workers"]
        return w if w["active"]["sha256"] == sha(good) else None

    state = wait_for(active, 60, "the watched file to become the active policy")
    assert state["active"]["version"] == "2026.12.watch" and state["active"]["trigger"] == "watch"
    assert state["reload_failed"] is False and state["reload_failures"] == 1
    worker.check_alive()
