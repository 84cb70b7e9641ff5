"""Broker readiness and topic creation with aiokafka's admin client.

Topics are created explicitly, before any client asks for their metadata: tansu
auto-creates unknown topics (with 4 partitions) on every metadata request, so a
consumer or producer that looks first would fix the partition count for us.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

__all__ = ["TOPIC_ALREADY_EXISTS", "create_topics", "partition_counts", "wait_for_kafka"]

#: Kafka protocol error code for CreateTopics on an existing topic.
TOPIC_ALREADY_EXISTS = 36


def _admin(bootstrap: str, client: dict[str, Any]) -> AIOKafkaAdminClient:
    """``client``: security settings (``KafkaSecurity.aiokafka_kwargs()``), empty for plaintext."""
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, client_id="zoneapp-stack", **client
    )


async def wait_for_kafka(bootstrap: str, *, timeout: float, **client: Any) -> None:
    """Wait until the broker answers a metadata request (cluster only, no topic names)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = _admin(bootstrap, client)
        try:
            await admin.start()
            await admin.describe_cluster()
            return
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no metadata answer from {bootstrap} after {timeout:.0f}s: {last!r}")


async def create_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    partitions: int,
    replication: int = 1,
    **client: Any,
) -> list[str]:
    """Create each topic with ``partitions``; existing ones are left alone. Returns the new ones."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    admin = _admin(bootstrap, client)
    try:
        await admin.start()
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication) for name in wanted], timeout_ms=10_000
        )
    finally:
        await admin.close()
    created: list[str] = []
    failures: list[str] = []
    for topic, code, message in response.topic_errors:
        if code == 0:
            created.append(topic)
        elif code != TOPIC_ALREADY_EXISTS:
            failures.append(f"{topic}: error {code} {message or ''}".strip())
    if failures:
        raise RuntimeError("cannot create topics: " + "; ".join(failures))
    return created


async def partition_counts(bootstrap: str, names: Sequence[str], **client: Any) -> dict[str, int]:
    """Partition count per existing topic. Only call for topics already created (auto-create)."""
    admin = _admin(bootstrap, client)
    try:
        await admin.start()
        described = await admin.describe_topics(list(names))
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
