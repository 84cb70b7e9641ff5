"""The embedded stack's fetch wait: low on tansu, Faust's on Apache Kafka, and what the
worker's started consumer fetches with (its fetcher, built by aiokafka at start)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from zoneapp.agents import fetch_wait

from zoneapp.application import create_app
from zoneapp.settings import Settings
from zoneapp.stack import EmbeddedStack
from zoneapp.stack.embedded import TANSU_FETCH_MAX_WAIT_MS

pytestmark = pytest.mark.integration


async def test_the_started_worker_consumer_fetches_with_the_stack_setting(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    env = {**stack.env(), "ZONEAPP_DATADIR": str(tmp_path / "data")}
    if stack.broker == "tansu":
        assert env["ZONEAPP_FETCH_MAX_WAIT_MS"] == str(TANSU_FETCH_MAX_WAIT_MS)
        expected = TANSU_FETCH_MAX_WAIT_MS
    else:
        assert "ZONEAPP_FETCH_MAX_WAIT_MS" not in env
        expected = fetch_wait.FAUST_FETCH_MAX_WAIT_MS
    app, _ = create_app(Settings.from_env(env))
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    consumer = thread._create_worker_consumer(app.transport)
    await consumer.start()
    try:
        assert consumer._fetcher._fetch_max_wait_ms == expected
    finally:
        await consumer.stop()
