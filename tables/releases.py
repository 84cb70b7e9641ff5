"""The releases table: release requests and their outcomes, kept across restarts.

One Faust ``Table`` (``zoneapp-releases``), rows keyed by release id (requests, approvals,
per-record outcomes: places and causes, never a value). Every row is written to changelog
partition 0, so the worker that is the active owner of that partition keeps and serves
every release of its group (``serving``); another worker of the group answers 503. Writes
are serialized and each waits for the broker's acknowledgement before the next, so every
changelog batch holds one record (tansu's end offsets are wrong after multi-record
batches, which would make recovery stop early).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, cast

import faust

from zoneapp.runtime import Runtime

TABLE_NAME = "zoneapp-releases"
PARTITION = 0


class ReleasesTable:
    """``zoneapp.release.ReleaseStore`` over a Faust table."""

    def __init__(self, app: faust.App, runtime: Runtime) -> None:
        self.app = app
        self.table: Any = app.Table(
            TABLE_NAME,
            default=None,
            partitions=runtime.settings.topic_partitions,
            key_type=str,
            value_type=None,
            help="release requests and outcomes (no values)",
        )
        self._lock = asyncio.Lock()

    def get(self, release_id: str) -> Mapping[str, Any] | None:
        row = self.table.data.get(release_id)
        return cast(Mapping[str, Any], row) if isinstance(row, dict) else None

    def rows(self) -> Iterable[Mapping[str, Any]]:
        return [row for row in list(self.table.data.values()) if isinstance(row, dict)]

    def size(self) -> int:
        return len(self.table.data)

    async def delete(self, release_id: str) -> None:
        """Drop a row; a tombstone in the changelog drops it on recovery too."""
        async with self._lock:
            if self.table.data.pop(release_id, None) is None:
                return
            fut = self.table.send_changelog(PARTITION, release_id, None)
            await asyncio.wait_for(fut, 30.0)

    async def put(self, row: dict[str, Any]) -> None:
        async with self._lock:
            key = str(row["id"])
            self.table.data[key] = row
            fut = self.table.send_changelog(PARTITION, key, row)
            await asyncio.wait_for(fut, 30.0)

    def owner(self) -> str | None:
        """The web URL of the worker keeping the releases (Faust's router), or None."""
        try:
            hosts = self.app.router.table_metadata(self.table.name)
        except Exception:
            return None
        name = self.table.changelog_topic.get_topic_name()
        for host, topics in hosts.items():
            if PARTITION in (topics.get(name) or ()):
                return str(host).rstrip("/")
        return None

    def serving(self) -> bool:
        name = self.table.changelog_topic.get_topic_name()
        try:
            actives = self.app.assignor.assigned_actives()
        except Exception:
            return False
        return any(tp.topic == name and tp.partition == PARTITION for tp in actives)
