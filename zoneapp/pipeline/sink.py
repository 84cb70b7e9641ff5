"""Where a boundary's outputs go: the interface, and an in-memory sink for tests and tools.

The Faust worker produces through ``agents.boundary.FaustSink``; ``MemorySink``
keeps what would have been produced, behind the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Headers = list[tuple[str, bytes]]
#: (topic, key, value, headers) of one produced record.
Sent = tuple[str, bytes | None, bytes | None, Headers]


class Sink(Protocol):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp_ms: int | None,
    ) -> None: ...


@dataclass
class MemorySink:
    sent: list[Sent] = field(default_factory=list)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp_ms: int | None,
    ) -> None:
        self.sent.append((topic, key, value, headers))

    def on(self, topic: str) -> list[Sent]:
        """What was produced to one topic, in order."""
        return [s for s in self.sent if s[0] == topic]
