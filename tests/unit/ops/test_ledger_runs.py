"""LedgerRuns: one reconciliation at a time per worker, answers reused while fresh."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from zoneapp.ops.ledger import Ledger
from zoneapp.ops.reconcile import Busy, LedgerRuns, Window
from zoneapp.policy import CompiledPolicy
from zoneapp.settings import Settings


class Runs:
    """A reconcile that counts its runs and can be held mid-run."""

    def __init__(self) -> None:
        self.calls: list[tuple[Window | None, list[str] | None]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(
        self,
        policy: CompiledPolicy,
        settings: Settings,
        window: Window | None = None,
        *,
        boundaries: Iterable[str] | None = None,
        timeout: float = 300.0,
    ) -> Ledger:
        self.calls.append((window, list(boundaries) if boundaries else None))
        await self.release.wait()
        ledger = Ledger()
        row = ledger.partition("b", "src", 0)
        row.committed, row.source = 3, {0, 1, 2}
        for offset in (0, 1):
            ledger.output(
                {"zoneapp-boundary": "b", "zoneapp-source-topic": "src",
                 "zoneapp-source-partition": "0", "zoneapp-source-offset": str(offset)},
                quarantine=False,
            )  # fmt: skip
        return ledger


POLICY: Any = None
SETTINGS: Any = None


async def test_an_answer_is_reused_for_the_same_question_until_it_is_stale() -> None:
    now = [1000.0]
    runs = Runs()
    ledgers = LedgerRuns(ttl=30, clock=lambda: now[0], run=runs)
    assert ledgers.brief() is None
    first = await ledgers.summary(POLICY, SETTINGS, Window(), None)
    assert (first["ok"], first["missing"], first["forwarded"]) == (False, 1, 2)
    assert first["generated_at"].startswith("1970-01-01T00:16:40")
    assert await ledgers.summary(POLICY, SETTINGS, Window(), None) is first
    other = await ledgers.summary(POLICY, SETTINGS, Window(0, 2), ["b"])
    assert len(runs.calls) == 2 and other["boundaries"] == ["b"]
    assert ledgers.brief() == {k: v for k, v in other.items() if k != "partitions"}
    now[0] += 31
    await ledgers.summary(POLICY, SETTINGS, Window(), None)
    assert len(runs.calls) == 3


async def test_a_second_question_during_a_run_is_refused_not_queued() -> None:
    runs = Runs()
    runs.release.clear()
    ledgers = LedgerRuns(run=runs)
    running = asyncio.create_task(ledgers.summary(POLICY, SETTINGS, Window(), None))
    while not runs.calls:
        await asyncio.sleep(0)
    with pytest.raises(Busy):
        await ledgers.summary(POLICY, SETTINGS, Window(5, 9), None)
    runs.release.set()
    assert (await running)["source_records"] == 3
    assert len(runs.calls) == 1
