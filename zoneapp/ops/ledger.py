"""What reconciliation concludes, from offsets and lineage headers alone (no values).

Per boundary and source partition, the ledger holds the source offsets that exist in the
range being checked, and every output that names one of them through its lineage headers
(``zoneapp-boundary``, ``zoneapp-source-topic``, ``-partition`` and ``-offset``) in the
destination topic or the source zone's quarantine topic. Then:

- **handled**: a source offset with at least one output;
- **missing**: a source offset, below the boundary's committed offset, with none;
- **duplicated**: an output beyond the first for the same source offset (at-least-once
  redelivery; the consumer drops it with ``zoneapp.core.dedupe``);
- **released**: a source offset whose quarantined record was later released by an
  officer's approved release (a destination record with ``zoneapp-release-id``): counted
  apart, neither as a second forward nor as a duplicate, since its quarantine output is
  still there (a release run twice counts as duplicated);
- offsets at or above the committed offset are **in flight**, not missing;
- a partition with records but no commit of the workers' group is **uncommitted**: not
  OK, since nothing there can be shown handled (workers never ran, or the wrong group).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Ledger", "PartitionLedger", "ranges"]


def ranges(offsets: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted offsets as inclusive ``(first, last)`` runs: 3,4,5,9 -> [(3, 5), (9, 9)]."""
    runs: list[tuple[int, int]] = []
    for offset in sorted(set(offsets)):
        if runs and offset == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return runs


@dataclass
class PartitionLedger:
    boundary: str
    topic: str
    partition: int
    #: The first offset checked and the committed offset (exclusive end of the check).
    start: int = 0
    committed: int = 0
    #: Offsets that exist in the source within [start, committed).
    source: set[int] = field(default_factory=set)
    #: The source partition holds records but the workers' group has no commit on it
    #: (workers never ran, or the wrong ZONEAPP_APP_ID): nothing can be shown handled.
    uncommitted: bool = False
    forwarded: Counter[int] = field(default_factory=Counter)
    quarantined: Counter[int] = field(default_factory=Counter)
    #: Source offsets released from quarantine, by how many released outputs name them.
    released: Counter[int] = field(default_factory=Counter)

    def output(self, offset: int, *, quarantine: bool, released: bool = False) -> None:
        if self.start <= offset < self.committed:
            if released and not quarantine:
                self.released[offset] += 1
            else:
                (self.quarantined if quarantine else self.forwarded)[offset] += 1

    @property
    def missing(self) -> list[int]:
        return sorted(
            o for o in self.source if o not in self.forwarded and o not in self.quarantined
        )

    @property
    def duplicated(self) -> int:
        both = self.forwarded + self.quarantined
        again = sum(n - 1 for n in self.released.values() if n > 1)
        return sum(n - 1 for n in both.values() if n > 1) + again

    def summary(self) -> dict[str, Any]:
        return {
            "boundary": self.boundary,
            "topic": self.topic,
            "partition": self.partition,
            "consumed": [self.start, self.committed - 1] if self.committed > self.start else None,
            "source_records": len(self.source),
            "forwarded": len(self.forwarded),
            "quarantined": len(self.quarantined),
            "released": len(self.released),
            "missing": [list(r) for r in ranges(self.missing)],
            "missing_count": len(self.missing),
            "duplicated": self.duplicated,
            "uncommitted": self.uncommitted,
        }


@dataclass
class Ledger:
    partitions: dict[tuple[str, str, int], PartitionLedger] = field(default_factory=dict)

    def partition(self, boundary: str, topic: str, partition: int) -> PartitionLedger:
        key = (boundary, topic, partition)
        if key not in self.partitions:
            self.partitions[key] = PartitionLedger(boundary, topic, partition)
        return self.partitions[key]

    def output(self, lineage: dict[str, str], *, quarantine: bool) -> None:
        """One output's lineage headers (as text); outputs of other boundaries, or without
        lineage, are not this ledger's."""
        boundary = lineage.get("zoneapp-boundary")
        topic = lineage.get("zoneapp-source-topic")
        partition = lineage.get("zoneapp-source-partition")
        offset = lineage.get("zoneapp-source-offset")
        if boundary is None or topic is None or partition is None or offset is None:
            return
        try:
            key = (boundary, topic, int(partition))
            number = int(offset)
        except ValueError:
            return
        if key in self.partitions:
            released = bool(lineage.get("zoneapp-release-id"))
            self.partitions[key].output(number, quarantine=quarantine, released=released)

    @property
    def missing(self) -> int:
        return sum(len(p.missing) for p in self.partitions.values())

    @property
    def uncommitted(self) -> list[str]:
        return [f"{t}/{p}" for (_, t, p), row in sorted(self.partitions.items()) if row.uncommitted]

    @property
    def ok(self) -> bool:
        """Nothing missing, and nothing that could not be checked."""
        return self.missing == 0 and not self.uncommitted

    def summary(self) -> dict[str, Any]:
        rows = [self.partitions[k].summary() for k in sorted(self.partitions)]
        return {
            "ok": self.ok,
            "missing": self.missing,
            "uncommitted": self.uncommitted,
            "duplicated": sum(r["duplicated"] for r in rows),
            "forwarded": sum(r["forwarded"] for r in rows),
            "quarantined": sum(r["quarantined"] for r in rows),
            "released": sum(r["released"] for r in rows),
            "source_records": sum(r["source_records"] for r in rows),
            "partitions": rows,
        }
