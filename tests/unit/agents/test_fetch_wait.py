"""ZONEAPP_FETCH_MAX_WAIT_MS reaches the aiokafka consumer Faust builds for the worker.

The consumer is built by the app's own transport, consumer and consumer thread (what
``faust worker`` does at start-up), not started: its configuration is read back.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import pytest
from zoneapp.agents import fetch_wait

from tests.fixtures import app_settings
from zoneapp.application import create_app
from zoneapp.settings import Settings, SettingsError


def _worker_consumer(settings: Settings) -> aiokafka.AIOKafkaConsumer:
    app, _ = create_app(settings)
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    consumer: aiokafka.AIOKafkaConsumer = thread._create_worker_consumer(app.transport)
    return consumer


async def test_the_setting_reaches_the_worker_consumer(tmp_path: Any) -> None:
    consumer = _worker_consumer(app_settings(tmp_path, fetch_max_wait_ms=50))
    assert consumer._fetch_max_wait_ms == 50
    # Everything else is still Faust's: e.g. its group and its manual commits.
    assert consumer._group_id == "zoneapp"
    assert consumer._enable_auto_commit is False


async def test_unset_keeps_fausts_wait_and_transport(tmp_path: Any) -> None:
    settings = app_settings(tmp_path)
    app, _ = create_app(settings)
    assert not isinstance(app.transport, fetch_wait.Transport)
    consumer = _worker_consumer(settings)
    assert consumer._fetch_max_wait_ms == fetch_wait.FAUST_FETCH_MAX_WAIT_MS


def test_from_env() -> None:
    assert Settings.from_env({}).fetch_max_wait_ms is None
    assert Settings.from_env({"ZONEAPP_FETCH_MAX_WAIT_MS": "75"}).fetch_max_wait_ms == 75
    for bad in ("0", "-1", "fast", "60001"):
        with pytest.raises(SettingsError, match="ZONEAPP_FETCH_MAX_WAIT_MS"):
            Settings.from_env({"ZONEAPP_FETCH_MAX_WAIT_MS": bad})


def test_refused_for_another_driver() -> None:
    """A setting the driver would ignore is an error, not a silent no-op."""
    with pytest.raises(SettingsError, match="aiokafka"):
        Settings.from_env(
            {"ZONEAPP_BROKER": "confluent://127.0.0.1:9092", "ZONEAPP_FETCH_MAX_WAIT_MS": "50"}
        )
    assert fetch_wait.transport_for("confluent", 50) is None
    assert fetch_wait.transport_for("kafka", 50) is fetch_wait.Transport
    assert fetch_wait.transport_for("kafka", None) is None


def test_batch_within_from_env() -> None:
    """The other half of the latency: how long take_events waits for a batch to fill."""
    assert Settings.from_env({}).batch_within == 0.05
    assert Settings.from_env({"ZONEAPP_BATCH_WITHIN_MS": "10"}).batch_within == 0.01
    for bad in ("0", "x", "60001"):
        with pytest.raises(SettingsError, match="ZONEAPP_BATCH_WITHIN_MS"):
            Settings.from_env({"ZONEAPP_BATCH_WITHIN_MS": bad})
