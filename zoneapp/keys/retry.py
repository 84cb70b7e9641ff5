"""The one retry policy for back-end calls: exponential backoff, then fail closed.

Two users, one schedule (first delay, doubled per failure, capped):

* :class:`~zoneapp.keys.wrappers.RetryingKeyProvider` retries a key operation a few
  times (``attempts``) and then raises the last error, so a short HSM blip costs a
  delay instead of an error, and a longer outage is still an error;
* the boundary guard (``zoneapp.pipeline.guard``) holds a batch with ``attempts=None``
  (until the dependency answers): nothing from the batch is produced meanwhile.

It lives in keys/, the lowest layer that talks to a back end, so that vault/ and
pipeline/ can use it too. Only the exception types given are retried; anything else
(a tampered ciphertext, a refused zone, a bug) propagates at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Backoff", "retry"]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """``first`` seconds, doubled after each failure up to ``maximum``; ``attempts`` calls in
    all (``None``: until the call answers)."""

    first: float = 0.1
    maximum: float = 10.0
    attempts: int | None = None

    def __post_init__(self) -> None:
        if self.first < 0 or self.maximum < self.first:
            raise ValueError("backoff delays must satisfy 0 <= first <= maximum")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be at least 1 (or None: until it answers)")


async def retry(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    retry_on: tuple[type[BaseException], ...],
    *,
    sleep: Sleep = asyncio.sleep,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
    on_recovered: Callable[[int], None] | None = None,
    never: tuple[type[BaseException], ...] = (),
) -> T:
    """Await ``call()`` until it returns; on a ``retry_on`` error wait and call again.

    ``on_retry(attempt, delay, exc)`` runs before each wait (attempt counts failures from
    1); ``on_recovered(failures)`` after a success that followed failures. An error that
    is also one of ``never`` is raised at once. When
    ``backoff.attempts`` calls have failed, the last error is raised: fail closed.
    """
    delay = backoff.first
    failures = 0
    while True:
        try:
            result = await call()
        except retry_on as exc:
            if isinstance(exc, never):
                raise
            failures += 1
            if backoff.attempts is not None and failures >= backoff.attempts:
                raise
            if on_retry is not None:
                on_retry(failures, delay, exc)
            await sleep(delay)
            delay = min(delay * 2, backoff.maximum)
            continue
        if failures and on_recovered is not None:
            on_recovered(failures)
        return result
