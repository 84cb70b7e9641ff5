"""The boundary agent in process: a real Faust agent over its test channel.

``agents.boundary`` turns Faust events into raw records, batches them with
``take_events`` and hands them to the guard. Here the agent runs on a real ``faust.App``
through ``agent.test_context()`` (no broker), on the runtime's real memory keys and vault,
producing into a ``MemorySink`` behind the same interface as the Faust producer. Checked:
each record becomes one output with its source offset, bad bytes become violations, the
stats hook sees each batch, and with the vault down nothing is produced until it is back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from zoneapp.agents.boundary import RAW, _processor

from tests.records import CARD, payment
from zoneapp.keys import build_key_admin
from zoneapp.pipeline.sink import MemorySink
from zoneapp.runtime import Runtime
from zoneapp.settings import Settings
from zoneapp.vault import MemoryTokenVault

POLICY = Path(__file__).resolve().parents[2] / "fixtures" / "policy.yaml"
BOUNDARY = "payments-to-confidential"


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = Settings(
        app_id=f"component-agents-{uuid.uuid4().hex[:8]}",
        keys_url=f"memory://agents-{uuid.uuid4().hex[:8]}",
        vault_url="memory://",
        environment="development",
        policy_path=str(POLICY),
        batch_size=4,
        retry_max_backoff=0.2,
    )
    running = Runtime.from_settings(settings)
    assert running.policy is not None, running.policy_error
    admin = build_key_admin(settings.keys_url, None, development=True)
    await admin.provision(sorted(running.zones_used))
    await admin.close()
    await running.open_keys()
    yield running
    await running.close()


def agent_of(runtime: Runtime, sink: MemorySink, batches: list[Any]) -> Any:
    app = faust.App(runtime.settings.app_id, broker="kafka://127.0.0.1:1", store="memory://")
    boundary = runtime.require_policy().boundary(BOUNDARY)
    topic = app.topic(*boundary.sources, **RAW)

    def on_batch(name: str, records: Any, outcomes: Any, seconds: float) -> None:
        batches.append((name, len(records), len(outcomes)))

    return app.agent(topic)(_processor(runtime, boundary, sink, on_batch))


async def until(check: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_each_record_becomes_one_output(runtime: Runtime) -> None:
    sink, batches = MemorySink(), list[Any]()
    agent = agent_of(runtime, sink, batches)
    values = [
        orjson.dumps(payment(payment_id="p1")),
        orjson.dumps(payment(payment_id="p2", notes=f"card {CARD}")),
        b"{broken",
        b"\xff\xfe",
    ]
    async with agent.test_context() as context:
        for value in values:
            await context.put(key=b'"k"', value=value)
        await until(
            lambda: (
                len(sink.on("confidential.payments")) + len(sink.on("restricted.quarantine")) == 4
            )
        )
    forwarded = sink.on("confidential.payments")
    quarantined = sink.on("restricted.quarantine")
    assert len(forwarded) == 1 and len(quarantined) == 3
    assert len(sink.on("security.violations")) == 3
    assert CARD.replace(" ", "") not in repr(forwarded)
    offsets = sorted(
        int(dict(h)["zoneapp-source-offset"]) for _, _, _, h in forwarded + quarantined
    )
    assert offsets == sorted(set(offsets)) and len(offsets) == 4
    assert sum(n for _, n, _ in batches) == 4 and all(b[0] == BOUNDARY for b in batches)
    stats = runtime.stats[BOUNDARY]
    assert (stats.consumed, stats.forwarded, stats.quarantined) == (4, 1, 3)


async def test_nothing_is_produced_while_the_vault_is_down(runtime: Runtime) -> None:
    sink, batches = MemorySink(), list[Any]()
    vault: MemoryTokenVault = runtime.vault.inner  # type: ignore[attr-defined]
    vault.available = False
    agent = agent_of(runtime, sink, batches)
    async with agent.test_context() as context:
        await context.put(key=b'"k"', value=orjson.dumps(payment(payment_id="p9")))
        await until(lambda: runtime.stats[BOUNDARY].dependency_retries >= 2)
        assert sink.sent == [] and batches == []
        assert runtime.stats[BOUNDARY].waiting_on is not None
        vault.available = True
        await until(lambda: len(sink.on("confidential.payments")) == 1)
    assert runtime.stats[BOUNDARY].waiting_on is None and len(batches) == 1
