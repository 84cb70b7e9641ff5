"""The seek counts that fence off records fetched before a seek (agents/fence.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from zoneapp.agents.fence import Fence, Stamped, _redeliverable, undelivered


def test_a_stamp_is_superseded_only_for_the_partitions_sought_since() -> None:
    fence = Fence()
    fence.sought(["a"])
    batch = Stamped({"a": [1, 2], "b": [3]})
    stamp = fence.stamp(batch)
    assert fence.superseded(stamp) == []
    fence.sought(["b"])
    assert fence.superseded(stamp) == ["b"]
    fence.sought(["a", "b"])
    assert sorted(fence.superseded(stamp)) == ["a", "b"]
    assert fence.superseded(fence.stamp(batch)) == []


@dataclass
class _Topics:
    acking: set[str]

    def acks_enabled_for(self, topic: str) -> bool:
        return topic in self.acking


@dataclass
class _Tables:
    changelog_topics: set[str] = field(default_factory=set)


@dataclass
class _App:
    topics: _Topics
    tables: _Tables


@dataclass
class _Consumer:
    app: _App


def test_only_stream_topics_are_redelivered_below_a_stale_read_offset() -> None:
    """A table changelog replayed out of order would revert the table, so it keeps
    Faust's drop; a topic Faust does not ack is not a stream either."""
    consumer = _Consumer(_App(_Topics({"payments", "changelog"}), _Tables({"changelog"})))
    assert _redeliverable(consumer, "payments")
    assert not _redeliverable(consumer, "changelog")
    assert not _redeliverable(consumer, "replies")


@dataclass
class _Record:
    offset: int


def test_undelivered_is_the_first_record_past_the_last_handed_on() -> None:
    batch = {"a": [_Record(o) for o in (3, 4, 5)], "b": [_Record(7)], "c": [], "d": [_Record(1)]}
    assert undelivered(batch, {"a": 3, "b": 7, "d": 0}) == {"a": 4, "d": 1}
    assert undelivered(batch, {}) == {"a": 3, "b": 7, "d": 1}
    assert undelivered(batch, {"a": 5, "b": 9, "d": 1}) == {}
