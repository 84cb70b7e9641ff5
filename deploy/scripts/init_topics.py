"""Create the policy's topics before any worker starts: the topic-init step of deploy/.

Reads the same ``ZONEAPP_*`` variables as the worker (broker, SASL/TLS, policy,
``ZONEAPP_TOPIC_PARTITIONS``), so it works unchanged against a secured cluster.
Every topic of ``load_policy(ZONEAPP_POLICY).topics()`` is created with exactly
``ZONEAPP_TOPIC_PARTITIONS`` partitions; an existing topic with another count is an
error (exit 1), never silently accepted: zoneapp expects matching counts, and
changing a count later moves keys between partitions.

Usage: ``python init_topics.py [--replication-factor N] [--wait SECONDS]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Kafka protocol error code for CreateTopics on an existing topic.
TOPIC_ALREADY_EXISTS = 36


class Admin(Protocol):
    """The part of aiokafka's ``AIOKafkaAdminClient`` this script uses."""

    async def create_topics(self, new_topics: list[Any], timeout_ms: int | None = None) -> Any: ...

    async def describe_topics(self, topics: list[str] | None = None) -> list[Any]: ...


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    #: topic -> problem (wrong partition count, creation error)
    problems: dict[str, str] = field(default_factory=dict)


def policy_topics(policy_path: str) -> list[str]:
    """Exactly the topics the policy's boundaries read and write, quarantines, security topic."""
    from zoneapp.policy import load_policy

    return load_policy(policy_path).topics()


async def ensure_topics(
    admin: Admin, names: Sequence[str], *, partitions: int, replication: int
) -> TopicReport:
    """Create missing topics, then check every topic has ``partitions`` partitions."""
    from aiokafka.admin import NewTopic

    report = TopicReport()
    wanted = sorted(set(names))
    response = await admin.create_topics(
        [NewTopic(name, partitions, replication) for name in wanted], timeout_ms=30_000
    )
    for topic, code, message in response.topic_errors:
        if code == 0:
            report.created.append(topic)
        elif code == TOPIC_ALREADY_EXISTS:
            report.existing.append(topic)
        else:
            report.problems[topic] = f"cannot create: error {code} {message or ''}".strip()
    described = await admin.describe_topics(wanted)
    counts = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
    for topic in wanted:
        if topic in report.problems:
            continue
        count = counts.get(topic)
        if count is None:
            report.problems[topic] = "not found after creation"
        elif count != partitions:
            report.problems[topic] = (
                f"has {count} partitions, ZONEAPP_TOPIC_PARTITIONS is {partitions} "
                "(recreate it, or set ZONEAPP_TOPIC_PARTITIONS to match on every worker)"
            )
    report.created.sort()
    report.existing.sort()
    return report


async def _connect(settings: Any, deadline: float) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    last: Exception | None = None
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.broker_urls(),
            client_id="zoneapp-topic-init",
            request_timeout_ms=30_000,
            **settings.security.aiokafka_kwargs(),
        )
        try:
            await admin.start()
            await admin.describe_cluster()
            return admin
        except (KafkaError, OSError) as exc:
            last = exc
            await admin.close()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no answer from {settings.broker_urls()}: {last!r}")
        await asyncio.sleep(1.0)


async def run(replication: int, wait: float) -> int:
    from zoneapp.settings import Settings

    settings = Settings.from_env()
    names = policy_topics(settings.policy_path)
    admin = await _connect(settings, time.monotonic() + wait)
    try:
        report = await ensure_topics(
            admin, names, partitions=settings.topic_partitions, replication=replication
        )
    finally:
        await admin.close()
    print(
        f"topics ({settings.topic_partitions} partitions): "
        f"created {report.created or '-'}; already there {report.existing or '-'}",
        flush=True,
    )
    for topic, problem in sorted(report.problems.items()):
        print(f"topic {topic}: {problem}", file=sys.stderr, flush=True)
    return 1 if report.problems else 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replication-factor", type=int, default=1, dest="replication")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for Kafka")
    args = parser.parse_args(argv)
    sys.exit(asyncio.run(run(args.replication, args.wait)))


if __name__ == "__main__":
    main()
