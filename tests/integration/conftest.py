"""Integration fixtures: one embedded stack per session, and Faust workers on it.

Missing system packages FAIL the tests (with the command that installs them)
instead of skipping them: a green run must mean the integration suite really ran.

The broker lane: ``ZONEAPP_STACK_BROKER=kafka`` runs every stack fixture on Apache Kafka,
unset (or ``tansu``) on tansu. Tests marked ``kafka`` (tests/integration/test_kafka_broker.py)
build their own Kafka stack whatever the lane, since only Kafka has TLS, SCRAM users and a
log that survives a restart.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from zoneapp.stack import EmbeddedStack, WorkerProcess, free_port, missing_prerequisites
from zoneapp.stack.embedded import default_broker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = REPO / "deploy" / "policies" / "ecommerce.yaml"
WORKER_READY_TIMEOUT = 120.0
WORKER_STOP_TIMEOUT = 15.0
INSTALL = (
    "install them with `sudo apt-get update && sudo apt-get install -y redis-server softhsm2` "
    "(or run scripts/bootstrap.sh, which `make test` does)"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kafka: needs real Apache Kafka (always runs on it)")


def pytest_report_header(config: pytest.Config) -> str:
    return f"zoneapp stack broker: {default_broker()} (ZONEAPP_STACK_BROKER)"


def require_prerequisites(broker: str | None = None) -> None:
    """Fail (never skip) when the stack cannot run on this machine."""
    problems = missing_prerequisites(broker)
    if problems:
        pytest.fail(
            "integration tests need the embedded stack: " + "; ".join(problems) + f". {INSTALL}",
            pytrace=False,
        )


@pytest.fixture
def prerequisites() -> None:
    """Fails the test (with install instructions) when redis-server/SoftHSM2 are missing."""
    require_prerequisites()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """Broker (the lane's) + redis-server + SoftHSM token on free ports, example policy,
    4 partitions."""
    require_prerequisites()
    with EmbeddedStack(tmp_path_factory.mktemp("stack"), EXAMPLE_POLICY) as running:
        yield running


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """A stack of its own (2 partitions), for tests that write to policy topics or stop it."""
    require_prerequisites()
    with EmbeddedStack(tmp_path / "stack", EXAMPLE_POLICY, partitions=2) as running:
        yield running


def spawn_worker(
    stack: EmbeddedStack,
    workdir: Path,
    name: str,
    env: dict[str, str] | None = None,
    *,
    wait: bool = True,
) -> WorkerProcess:
    """Start ``faust -A zoneapp worker`` on ``stack`` with its own web port, data dir and
    log (``workdir/<name>.log``); the stack stops it too, even when a test fails."""
    port = free_port()
    full = {**stack.env(web_port=port), "ZONEAPP_DATADIR": str(workdir / f"{name}-data")}
    full.update(env or {})
    worker = WorkerProcess(
        full, log_path=workdir / f"{name}.log", web_port=port, cwd=REPO, name=name
    )
    worker.start()
    stack.adopt(worker)
    if wait:
        worker.wait_ready(WORKER_READY_TIMEOUT)
    return worker


class RunWorker(Protocol):
    def __call__(
        self,
        env_overrides: dict[str, str] | None = None,
        boundaries: str | None = None,
        wait: bool = True,
    ) -> WorkerProcess: ...


@pytest.fixture
def run_worker(stack: EmbeddedStack, tmp_path: Path) -> Iterator[RunWorker]:
    """Factory: start ``faust -A zoneapp worker`` on the stack and wait for Ready.

    Each worker gets its own web port, data dir and log file (``tmp_path``); all are
    stopped at teardown (SIGTERM, SIGKILL after 15 s).
    """
    started: list[WorkerProcess] = []
    counter = itertools.count(1)

    def start(
        env_overrides: dict[str, str] | None = None,
        boundaries: str | None = None,
        wait: bool = True,
    ) -> WorkerProcess:
        env = {"ZONEAPP_BOUNDARIES": boundaries} if boundaries is not None else {}
        env.update(env_overrides or {})
        worker = spawn_worker(stack, tmp_path, f"worker-{next(counter)}", env, wait=wait)
        started.append(worker)
        return worker

    yield start
    for worker in reversed(started):
        worker.stop(timeout=WORKER_STOP_TIMEOUT)
