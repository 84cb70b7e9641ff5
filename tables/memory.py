"""The stats and violations tables in a dict: one process owning every partition.

For running the web routes in process (tests/component/web): the counting, bounding,
filtering and paging are the Faust tables' own code (``StatsCounters``,
``ViolationIndex``); only where the rows live and which partitions are active differ.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from zoneapp.policy import CompiledBoundary, CompiledPolicy

from .stats import StatsCounters
from .violations import ViolationIndex


class MemoryStats(StatsCounters):
    """Counters flushed to a dict of rows (``flush``), served by ``local_rows``."""

    def __init__(self, boundaries: Iterable[CompiledBoundary]) -> None:
        super().__init__(boundaries)
        #: boundary -> row key -> row, as a worker's table holds them.
        self.rows: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.zones}

    def stored_row(self, boundary: str, key: str) -> Any:
        return self.rows[boundary].get(key)

    def flush(self) -> int:
        """Write every counter's row; returns rows written."""
        now = time.time()
        for stats in self.local.values():
            self.rows[stats.boundary][stats.key] = stats.to_row(now)
        return len(self.local)

    def local_rows(self) -> list[dict[str, Any]]:
        return [row for rows in self.rows.values() for row in rows.values()]


class MemoryViolations(ViolationIndex):
    """The violation index in a dict; every partition is active here."""

    def __init__(self, keep: int, policy: CompiledPolicy | None) -> None:
        super().__init__(keep, policy)
        self._rows: dict[str, dict[str, Any]] = {}

    def rows(self) -> Mapping[str, Any]:
        return self._rows

    def put(self, vid: str, row: dict[str, Any]) -> None:
        self._rows[vid] = row

    def delete(self, vid: str) -> None:
        del self._rows[vid]

    def active_partitions(self) -> set[int]:
        return {int(row["p"]) for row in self._rows.values()}
