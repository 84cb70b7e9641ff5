"""The pinned Kafka install: a Maven fetch checked against the jar lock, and its cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoneapp.stack.apache_kafka import install_kafka, lock_differences
from zoneapp.stack.apache_kafka_lock import JARS, KAFKA_VERSION

from .conftest import require_prerequisites

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_a_fresh_install_reproduces_the_lock_and_a_tampered_jar_is_fetched_again(
    tmp_path: Path,
) -> None:
    require_prerequisites("kafka")
    jars = install_kafka(tmp_path / "cache")  # Maven, from ~/.m2 when it has them
    assert jars == tmp_path / "cache" / "jars"
    assert {p.name for p in jars.glob("*.jar")} == set(JARS)
    assert f"kafka_2.13-{KAFKA_VERSION}.jar" in JARS
    victim = jars / f"kafka-clients-{KAFKA_VERSION}.jar"
    victim.write_bytes(b"not the jar the lock names")
    (jars / "extra.jar").write_bytes(b"x")
    again = install_kafka(tmp_path / "cache")
    assert victim.stat().st_size > 1_000_000
    assert not (again / "extra.jar").exists()
    assert install_kafka(tmp_path / "cache") == again


def test_lock_differences_name_missing_unexpected_and_changed_jars() -> None:
    assert lock_differences(dict(JARS), JARS) is None
    got = dict(JARS)
    del got[f"kafka_2.13-{KAFKA_VERSION}.jar"]
    got["evil-1.0.jar"] = "00" * 32
    got[f"kafka-clients-{KAFKA_VERSION}.jar"] = "11" * 32
    text = lock_differences(got, JARS)
    assert text is not None
    assert f"missing ['kafka_2.13-{KAFKA_VERSION}.jar']" in text
    assert "unexpected ['evil-1.0.jar']" in text
    assert f"different bytes ['kafka-clients-{KAFKA_VERSION}.jar']" in text
