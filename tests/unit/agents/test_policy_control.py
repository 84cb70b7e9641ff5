"""A SIGHUP that reaches a worker while it is still starting (or stopping) must not end
it: the default action of SIGHUP is to terminate the process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from zoneapp.agents.policy_control import install_policy_control

from tests.fixtures import POLICY, app_settings
from zoneapp.application import create_app


@pytest.fixture
def sighup_restored() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


def test_a_sighup_while_starting_is_held_then_applied(
    tmp_path: Path, sighup_restored: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zoneapp")
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    app, runtime = create_app(app_settings(tmp_path))
    control = install_policy_control(app, runtime)
    assert control is not None
    create_app(app_settings(tmp_path))  # another app built after it takes the handler over
    assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL
    os.kill(os.getpid(), signal.SIGHUP)  # with the default action this test would end here

    async def start_and_stop() -> None:
        service = control()
        await service.on_start()
        for _ in range(100):
            if "unchanged" in caplog.text:
                break
            await asyncio.sleep(0.05)
        await service.on_stop()

    asyncio.run(start_and_stop())
    assert "a SIGHUP came while the worker was starting; reloading now" in caplog.text
    assert f"policy: reload (SIGHUP): {POLICY} unchanged" in caplog.text
    # Stopped: a SIGHUP is ignored, not the default that ends the process.
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    os.kill(os.getpid(), signal.SIGHUP)


def test_no_sighup_no_reload(
    tmp_path: Path, sighup_restored: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zoneapp")
    app, runtime = create_app(app_settings(tmp_path))
    control = install_policy_control(app, runtime)
    assert control is not None

    async def start_and_stop() -> None:
        service = control()
        await service.on_start()
        await asyncio.sleep(0.2)
        await service.on_stop()

    asyncio.run(start_and_stop())
    assert "SIGHUP came while" not in caplog.text
    assert "reload (SIGHUP)" not in caplog.text
