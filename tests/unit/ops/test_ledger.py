"""The reconciliation ledger: offsets and lineage in, missing ranges and duplicates out."""

from __future__ import annotations

import pytest

from zoneapp.commands import render_ledger
from zoneapp.ops.ledger import Ledger, ranges
from zoneapp.ops.reconcile import Window


def lineage(offset: int, boundary: str = "b", partition: int = 0) -> dict[str, str]:
    return {
        "zoneapp-boundary": boundary,
        "zoneapp-source-topic": "src",
        "zoneapp-source-partition": str(partition),
        "zoneapp-source-offset": str(offset),
    }


def ledger_of(committed: int, outputs: list[tuple[int, bool]]) -> Ledger:
    ledger = Ledger()
    row = ledger.partition("b", "src", 0)
    row.start, row.committed = 0, committed
    row.source = set(range(committed))
    for offset, quarantine in outputs:
        ledger.output(lineage(offset), quarantine=quarantine)
    return ledger


def test_ranges_are_inclusive_runs() -> None:
    assert ranges([9, 3, 4, 5, 5]) == [(3, 5), (9, 9)]
    assert ranges([]) == []


def test_every_committed_offset_needs_an_output() -> None:
    ledger = ledger_of(6, [(0, False), (1, True), (3, False), (5, False), (5, False)])
    summary = ledger.summary()
    row = summary["partitions"][0]
    assert row["missing"] == [[2, 2], [4, 4]] and ledger.missing == 2
    assert (row["forwarded"], row["quarantined"], row["duplicated"]) == (3, 1, 1)
    assert row["consumed"] == [0, 5] and not summary["ok"]


def test_offsets_beyond_the_commit_are_in_flight_and_foreign_outputs_are_ignored() -> None:
    ledger = ledger_of(3, [(0, False), (1, False), (2, True), (7, False)])
    ledger.output(lineage(0, boundary="other"), quarantine=False)
    ledger.output({"zoneapp-boundary": "b"}, quarantine=False)  # no lineage
    ledger.output({**lineage(1), "zoneapp-source-offset": "x"}, quarantine=False)
    summary = ledger.summary()
    assert summary["ok"] and summary["duplicated"] == 0 and summary["forwarded"] == 2


def test_source_gaps_are_not_missing_records() -> None:
    """Offsets the source never had (compaction, transaction markers) are not owed."""
    ledger = ledger_of(5, [(0, False), (4, False)])
    ledger.partitions[("b", "src", 0)].source = {0, 4}
    assert ledger.summary()["ok"]


def test_the_command_options_and_table() -> None:
    assert Window.parse(None, None, "10:20") == Window(10, 20, None, None)
    assert Window.parse(None, None, ":20") == Window(None, 20, None, None)
    assert Window.parse("1970-01-01T00:00:01Z", "5000", None) == Window(None, None, 1000, 5000)
    for bad in ("10", "a:b", ":", "\u0661:\u0662", f"0:{1 << 63}"):
        with pytest.raises(ValueError, match="offsets"):
            Window.parse(None, None, bad)
    for since in (str(1 << 63), "9999999-01-01T00:00:00Z", "yesterday"):
        with pytest.raises(ValueError) as refused:
            Window.parse(since, None, None)
        assert since not in str(refused.value)
    with pytest.raises(ValueError, match="END must be above FIRST"):
        Window.parse(None, None, "20:10")
    with pytest.raises(ValueError, match="later than since"):
        Window.parse("5000", "1000", None)
    table = render_ledger(ledger_of(4, [(0, False), (1, False)]))
    assert "2-3" in table and table.splitlines()[-1].startswith("MISSING 2:")


def test_a_partition_never_committed_is_not_ok() -> None:
    """Workers that never ran (or the wrong ZONEAPP_APP_ID) must not read as 'nothing lost'."""
    ledger = ledger_of(0, [])
    ledger.partitions[("b", "src", 0)].uncommitted = True
    summary = ledger.summary()
    assert not summary["ok"] and summary["missing"] == 0 and summary["uncommitted"] == ["src/0"]
    assert "NOT COMMITTED src/0" in render_ledger(ledger)


def test_a_released_record_is_counted_apart_and_the_ledger_balances() -> None:
    """A quarantined record an approved release forwarded later (zoneapp-release-id): not a
    second forward, not a duplicate; released twice (a resumed run) it is one duplicate."""
    ledger = ledger_of(3, [(0, False), (1, True), (2, True)])
    ledger.output({**lineage(1), "zoneapp-release-id": "r-1"}, quarantine=False)
    summary = ledger.summary()
    assert ledger.ok and summary["missing"] == 0 and summary["duplicated"] == 0
    assert (summary["forwarded"], summary["quarantined"], summary["released"]) == (1, 2, 1)
    assert "1 released from quarantine" in render_ledger(ledger)
    ledger.output({**lineage(1), "zoneapp-release-id": "r-1"}, quarantine=False)
    assert ledger.summary()["duplicated"] == 1 and ledger.summary()["released"] == 1
