"""The rewind's decisions, on the records a broker that skips ahead would serve.

``Rewinder.filter`` runs between aiokafka and Faust. The consumer here is a recording
stand-in for aiokafka's (only ``seek`` is used); the records are what each fetch returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from zoneapp.agents.offset_gaps import MAX_STEP, Rewinder

TP = ("restricted.payments", 0)


@dataclass(frozen=True)
class Record:
    offset: int


@dataclass
class Consumer:
    seeks: list[int] = field(default_factory=list)

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append(offset)


class Tp(tuple[str, int]):
    topic = property(lambda self: self[0])
    partition = property(lambda self: self[1])


TPX = Tp(TP)


def served(*offsets: int) -> dict[Any, list[Record]]:
    return {TPX: [Record(o) for o in offsets]}


def test_records_in_order_pass_untouched() -> None:
    rewinder, consumer = Rewinder(), Consumer()
    out = rewinder.filter(consumer, {TPX: 20}, served(20, 21, 22))
    assert [r.offset for r in out[TPX]] == [20, 21, 22] and consumer.seeks == []


def test_a_skip_ahead_is_held_back_and_reread(caplog: pytest.LogCaptureFixture) -> None:
    rewinder, consumer = Rewinder(), Consumer()
    # Position 20, but the broker serves the next batch (40..): nothing reaches Faust.
    assert rewinder.filter(consumer, {TPX: 20}, served(40, 41)) == {}
    assert consumer.seeks == [19]
    # Still skipping: step back further (2, then 4 offsets).
    assert rewinder.filter(consumer, {TPX: 19}, served(40)) == {}
    assert rewinder.filter(consumer, {TPX: 18}, served(40)) == {}
    assert consumer.seeks == [19, 18, 16]
    # The batch holding 20 arrives from its base: records below 20 are dropped.
    with caplog.at_level(logging.WARNING, logger="zoneapp.offsets"):
        out = rewinder.filter(consumer, {TPX: 16}, served(0, 10, 19, 20, 21))
    assert [r.offset for r in out[TPX]] == [20, 21]
    assert "re-read after a rewind" in caplog.text and rewinder.recovered == 1
    assert TPX not in rewinder.rewinding


def test_a_hole_the_broker_really_has_goes_on_after_one_rewind() -> None:
    """Real Kafka: transaction markers at 20..21; the re-read shows records around them."""
    rewinder, consumer = Rewinder(), Consumer()
    assert rewinder.filter(consumer, {TPX: 20}, served(22, 23)) == {}
    out = rewinder.filter(consumer, {TPX: 19}, served(19, 22, 23))
    assert [r.offset for r in out[TPX]] == [22, 23] and consumer.seeks == [19]


def test_an_earlier_batch_alone_keeps_waiting_for_the_expected_offset() -> None:
    rewinder, consumer = Rewinder(), Consumer()
    rewinder.filter(consumer, {TPX: 20}, served(40))
    assert rewinder.filter(consumer, {TPX: 19}, served(15, 16, 19)) == {}
    out = rewinder.filter(consumer, {TPX: 20}, served(20, 21))
    assert [r.offset for r in out[TPX]] == [20, 21]


def test_it_gives_up_at_offset_zero_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    rewinder, consumer = Rewinder(), Consumer()
    with caplog.at_level(logging.ERROR, logger="zoneapp.offsets"):
        position = 2
        for _ in range(5):
            out = rewinder.filter(consumer, {TPX: position}, served(9))
            if out:
                break
            position = consumer.seeks[-1]
    assert [r.offset for r in out[TPX]] == [9]
    assert "never served" in caplog.text and "reconcile" in caplog.text
    assert MAX_STEP >= 1 << 10


def test_a_seek_by_faust_meanwhile_drops_the_rewind() -> None:
    """After a rebalance Faust seeks to the committed offset (10, below the rewind's
    range): records from 10 must reach Faust, not be dropped as 'below 20'."""
    rewinder, consumer = Rewinder(), Consumer()
    rewinder.filter(consumer, {TPX: 20}, served(40))
    out = rewinder.filter(consumer, {TPX: 10}, served(10, 11))
    assert [r.offset for r in out[TPX]] == [10, 11] and TPX not in rewinder.rewinding
