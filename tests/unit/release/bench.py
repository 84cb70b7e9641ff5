"""A release service over memory back ends, fed by the real guard (service unit tests).

The records are quarantined by a real ``BoundaryGuard`` (its quarantine and security
outputs kept in memory), the release re-runs a real guard; keys, vault, topics, the
releases store and the audit are the in-memory implementations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from zoneapp.core.sanitizer import Outcome, RawRecord
from zoneapp.keys.envelope import KeyRing
from zoneapp.keys.memory import MemoryKeyProvider
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.sink import MemorySink
from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.release import MemoryQuarantine, MemoryReleaseStore, Officer, ReleaseService
from zoneapp.vault import CachingTokenVault, MemoryTokenVault


class Audit:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def write(self, event: dict[str, Any]) -> None:
        self.events.append(event)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Bench:
    policy: CompiledPolicy
    service: ReleaseService
    outcomes: list[Outcome]
    #: The violation events, in the order the records were quarantined.
    events: list[dict[str, Any]]
    out: MemorySink
    audit: Audit
    quarantine: MemoryQuarantine
    store: MemoryReleaseStore
    clock: Clock
    offsets: list[int] = field(default_factory=list)


def officer(name: str, zones: tuple[str, ...] = ("restricted",)) -> Officer:
    return Officer(name, name, frozenset(zones))


async def bench(
    tmp_path: Path,
    policy_yaml: str,
    boundary: str,
    docs: list[dict[str, Any]],
    headers: list[list[tuple[str, bytes]]] | None = None,
    store: MemoryReleaseStore | None = None,
    **service: Any,
) -> Bench:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_yaml)
    policy = load_policy(path)
    zones = sorted(policy.zones)
    provider = MemoryKeyProvider()
    await provider.provision(zones)
    await provider.open(zones)
    keyring = KeyRing(provider, zones)
    vault = MemoryTokenVault()
    sink = MemorySink()
    b = policy.boundary(boundary)
    guard = BoundaryGuard(policy, b, keyring, CachingTokenVault(vault), sink)
    records = [
        RawRecord(b.sources[0], 0, i, None, orjson.dumps(d), headers[i] if headers else [], 0)
        for i, d in enumerate(docs)
    ]
    outcomes = await guard.handle(records)
    quarantine = MemoryQuarantine()
    for topic, key, value, hdrs in sink.on(b.source_zone.quarantine_topic):
        quarantine.append(topic, key, value, list(hdrs))
    events = [orjson.loads(s[2] or b"") for s in sink.on(policy.security_topic)]
    out, audit, clock = MemorySink(), Audit(), Clock()
    store = store if store is not None else MemoryReleaseStore()
    svc = ReleaseService(
        policy,
        store=store,
        quarantine=quarantine,
        sink=out,
        keyring=lambda: keyring,
        vault=lambda: vault,
        audit=audit,
        ttl=3600,
        clock=clock,
        **service,
    )
    return Bench(policy, svc, outcomes, events, out, audit, quarantine, store, clock)
