"""Waiting on a condition, never on the clock: the tests' one polling helper.

A test that sleeps "long enough" is slow when the machine is idle and flaky when it is
busy. These helpers poll a check until it holds and fail with what was awaited and the
last thing seen, so a timeout reads as a finding instead of a bare ``assert False``.
The pause between two checks is the only sleep left, and it synchronizes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

__all__ = ["async_wait_for", "wait_for"]

T = TypeVar("T")
#: What a check may raise while the condition does not hold yet (a refused connection,
#: a half-written file, a record not there yet); anything else is a bug and propagates.
NOT_YET: tuple[type[BaseException], ...] = (AssertionError, OSError, ValueError, KeyError)


def wait_for(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.2,
    retry_on: tuple[type[BaseException], ...] = NOT_YET,
) -> T:
    """Call ``check`` until it returns a truthy value, and return that value.

    Fails the test after ``timeout`` seconds, naming ``what`` was awaited and the last
    value (or exception) ``check`` gave.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            last: object = check()
        except retry_on as exc:
            last = exc
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


async def async_wait_for(
    check: Callable[[], Awaitable[T | None]],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = NOT_YET,
) -> T:
    """:func:`wait_for` for a coroutine check, without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            last: object = await check()
        except retry_on as exc:
            last = exc
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)
