"""The tests' polling helper (tests/waiting.py): returns what the check found, retries
what "not yet" raises, and fails with what it waited for."""

from __future__ import annotations

import pytest

from tests.waiting import async_wait_for, wait_for


def test_returns_the_first_truthy_value_and_retries_not_yet() -> None:
    answers = iter([None, AssertionError("not yet"), 0, {"found": 1}])

    def check() -> dict[str, int] | None:
        answer = next(answers)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    assert wait_for(check, 5, "an answer", interval=0) == {"found": 1}


def test_times_out_naming_what_and_the_last_value() -> None:
    with pytest.raises(
        pytest.fail.Exception, match=r"after 0.05s waiting for the moon; last: \[\]"
    ):
        wait_for(lambda: [], 0.05, "the moon", interval=0)
    with pytest.raises(pytest.fail.Exception, match=r"last: KeyError\('k'\)"):
        wait_for(lambda: dict[str, int]()["k"], 0.05, "a key", interval=0)


def test_an_unexpected_error_is_not_swallowed() -> None:
    def broken() -> bool:
        raise TypeError("a bug")

    with pytest.raises(TypeError, match="a bug"):
        wait_for(broken, 5, "nothing")


async def test_async_variant() -> None:
    calls = 0

    async def third_time() -> bool:
        nonlocal calls
        calls += 1
        return calls == 3

    assert await async_wait_for(third_time, 5, "three calls", interval=0) is True
    assert calls == 3

    async def never() -> bool:
        return False

    with pytest.raises(pytest.fail.Exception, match="waiting for never; last: False"):
        await async_wait_for(never, 0.05, "never", interval=0)
