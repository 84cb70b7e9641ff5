"""Violation events: what was blocked, where, and why — never the value itself.

One event per quarantined record. ``field_path`` and ``detector`` name the first
problem; ``findings`` lists them all. Paths that look like PII themselves are
replaced by ``<redacted field name>`` before they get here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson

from zoneapp.core.sanitizer import Problem, RawRecord
from zoneapp.formats import utc_iso
from zoneapp.policy.compiled import CompiledBoundary, CompiledPolicy

ACTION_QUARANTINED = "quarantined"


def violation_event(
    policy: CompiledPolicy,
    boundary: CompiledBoundary,
    record: RawRecord,
    problems: list[Problem],
    trace_id: str,
    *,
    violation_id: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    first = problems[0]
    return {
        "id": violation_id or str(uuid.uuid4()),
        "timestamp": utc_iso(now),
        "boundary": boundary.name,
        "source": {
            "zone": boundary.source_zone.name,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        },
        "destination": boundary.destination,
        "reason": first.reason,
        "field_path": first.path,
        "detector": first.detector,
        "action": ACTION_QUARANTINED,
        "quarantine_topic": boundary.source_zone.quarantine_topic,
        "findings": [
            {"reason": p.reason, "field_path": p.path, "detector": p.detector, "detail": p.detail}
            for p in problems
        ],
        "policy_version": policy.version,
        "policy_hash": policy.digest,
        "trace_id": trace_id,
    }


def encode_violation(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def quarantine_headers(
    record: RawRecord, boundary: CompiledBoundary, event: dict[str, Any]
) -> list[tuple[str, bytes]]:
    """The original headers plus where the record came from and why it is here."""
    headers = [(k, v) for k, v in record.headers if not k.lower().startswith("zoneapp-")]
    headers += [
        ("zoneapp-violation-id", str(event["id"]).encode()),
        ("zoneapp-violation-reason", str(event["reason"]).encode()),
        ("zoneapp-boundary", boundary.name.encode()),
        ("zoneapp-source-topic", record.topic.encode()),
        ("zoneapp-source-partition", str(record.partition).encode()),
        ("zoneapp-source-offset", str(record.offset).encode()),
        ("zoneapp-record-id", record.record_id.encode()),
        ("zoneapp-policy-version", str(event["policy_version"]).encode()),
    ]
    return headers
