"""A stalled changelog recovery is read again from where recovery starts it
(agents/recovery_watch.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest
from zoneapp.agents.recovery_watch import STALL_S, check, reread_offsets, stalled


class TP(NamedTuple):
    topic: str
    partition: int


A, B, C = TP("t-changelog", 0), TP("t-changelog", 1), TP("u-changelog", 0)


def test_only_partitions_quiet_for_the_stall_time_are_stalled() -> None:
    received = {A: 100.0, B: 110.0}
    assert stalled(120.0, 90.0, received, {}, [A, B, C], 15.0) == [A, C]
    assert stalled(104.0, 90.0, received, {}, [A, B, C], 15.0) == []


def test_events_and_rereads_before_the_recovery_started_do_not_count() -> None:
    """Faust keeps the receipt times of earlier recoveries; a re-read of an earlier
    recovery does not hold the next one back either."""
    assert stalled(110.0, 100.0, {A: 10.0}, {A: 20.0}, [A], 15.0) == []
    assert stalled(115.0, 100.0, {A: 10.0}, {A: 20.0}, [A], 15.0) == [A]


def test_a_reread_partition_gets_the_stall_time_again() -> None:
    assert stalled(130.0, 100.0, {}, {A: 120.0}, [A], 15.0) == []
    assert stalled(135.0, 100.0, {}, {A: 120.0}, [A], 15.0) == [A]


def test_rereads_start_at_the_last_offset_applied_or_the_start() -> None:
    assert reread_offsets(Counter({A: -1, B: 6}), [A, B, C]) == {A: 0, B: 6, C: 0}


@dataclass
class Consumer:
    """An in-memory consumer: positions per partition, moved by seeks."""

    positions: dict[TP, int]
    seeks: list[dict[TP, int]] = field(default_factory=list)
    fail: bool = False

    async def position(self, tp: TP) -> int:
        return self.positions[tp]

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        if self.fail:
            raise RuntimeError("partition not assigned")
        self.seeks.append(dict(offsets))
        self.positions.update(offsets)


@dataclass
class App:
    consumer: Consumer


@dataclass
class Recovery:
    """What of Faust's ``Recovery`` the check reads, with Faust's names and meanings."""

    app: App
    in_recovery: bool
    _recovery_started_at: float | None
    active_tps: set[TP]
    active_offsets: Counter[TP]
    active_highwaters: Counter[TP]
    _active_events_received_at: dict[TP, float] = field(default_factory=dict)

    def active_stats(self) -> dict[TP, Any]:
        return {
            tp: hw - self.active_offsets[tp]
            for tp, hw in self.active_highwaters.items()
            if hw - self.active_offsets[tp] != 0
        }


def recovery(**kw: Any) -> Recovery:
    values: dict[str, Any] = {
        "app": App(Consumer({A: 8, B: 3})),
        "in_recovery": True,
        "_recovery_started_at": 100.0,
        "active_tps": {A, B},
        "active_offsets": Counter({A: -1, B: 2}),
        "active_highwaters": Counter({A: 7, B: 2}),
    }
    values.update(kw)
    return Recovery(**values)


def test_a_partition_fetched_past_its_records_without_events_is_read_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The CI stall's shape: highwater 7, reading from the start, the fetch position at
    the end, no event received. B is done and is left alone."""
    r = recovery()
    caplog.set_level("WARNING", "zoneapp.offsets")
    assert asyncio.run(check(r, 100.0 + STALL_S)) == {A: 0}
    assert r.app.consumer.seeks == [{A: 0}]
    assert r.app.consumer.positions[A] == 0
    (line,) = [m for m in caplog.messages if "read again" in m]
    assert "t-changelog[0]" in line and "from offset 0" in line and "last offset 7" in line
    # Not again before another stall time has passed.
    assert asyncio.run(check(r, 100.0 + STALL_S + 5)) == {}
    assert asyncio.run(check(r, 100.0 + 2 * STALL_S)) == {A: 0}


def test_a_partition_still_receiving_is_left_alone() -> None:
    r = recovery(_active_events_received_at={A: 100.0 + STALL_S - 1})
    assert asyncio.run(check(r, 100.0 + STALL_S)) == {}
    assert r.app.consumer.seeks == []


def test_nothing_is_sought_outside_a_recovery_or_for_partitions_no_longer_active() -> None:
    assert asyncio.run(check(recovery(in_recovery=False), 1_000.0)) == {}
    assert asyncio.run(check(recovery(_recovery_started_at=None), 1_000.0)) == {}
    assert asyncio.run(check(recovery(active_tps={B}), 1_000.0)) == {}


def test_a_failed_seek_is_logged_and_tried_at_a_later_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = recovery()
    r.app.consumer.fail = True
    caplog.set_level("WARNING", "zoneapp.offsets")
    assert asyncio.run(check(r, 100.0 + STALL_S)) == {}
    assert any("reading again failed" in m for m in caplog.messages)
    r.app.consumer.fail = False
    assert asyncio.run(check(r, 100.0 + 2 * STALL_S)) == {A: 0}
