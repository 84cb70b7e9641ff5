"""The one retry helper: its schedule, its callbacks, and that it gives up (fail closed)."""

from __future__ import annotations

import pytest

from zoneapp.keys.retry import Backoff, retry


class Flaky:
    """Fails ``failures`` times with ``error``, then answers ``"ok"``."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


async def test_until_it_answers_with_doubling_capped_delays() -> None:
    delays: list[float] = []
    events: list[tuple[str, int]] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    result = await retry(
        Flaky(7),
        Backoff(first=0.1, maximum=1.0),
        (ConnectionError,),
        sleep=sleep,
        on_retry=lambda attempt, delay, exc: events.append((str(exc), attempt)),
        on_recovered=lambda failures: events.append(("back", failures)),
    )
    assert result == "ok"
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert events == [*((f"failure {i}", i) for i in range(1, 8)), ("back", 7)]


async def test_no_recovery_callback_without_a_failure() -> None:
    recovered: list[int] = []
    assert await retry(Flaky(0), Backoff(), (ConnectionError,), on_recovered=recovered.append)
    assert recovered == []


async def test_bounded_attempts_raise_the_last_error() -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    flaky = Flaky(10)
    with pytest.raises(ConnectionError, match="failure 3"):
        await retry(
            flaky, Backoff(first=0.5, maximum=2.0, attempts=3), (ConnectionError,), sleep=sleep
        )
    assert flaky.calls == 3 and delays == [0.5, 1.0]


async def test_never_wins_over_retry_on() -> None:
    flaky = Flaky(1, ConnectionRefusedError)
    with pytest.raises(ConnectionRefusedError):
        await retry(flaky, Backoff(), (ConnectionError,), never=(ConnectionRefusedError,))
    assert flaky.calls == 1


async def test_other_errors_propagate_at_once() -> None:
    flaky = Flaky(1, ValueError)
    with pytest.raises(ValueError):
        await retry(flaky, Backoff(), (ConnectionError,))
    assert flaky.calls == 1


@pytest.mark.parametrize(
    "kwargs", [{"first": -1.0}, {"first": 2.0, "maximum": 1.0}, {"attempts": 0}]
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]
