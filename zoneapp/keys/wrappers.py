"""Cross-cutting behaviour around a key provider, as wrappers (the Kroxylicious style).

Each wrapper implements :class:`~zoneapp.keys.api.KeyProvider` and delegates to the
provider inside it, so each can be read and tested alone and the back ends stay plain.
:func:`runtime_stack` composes them in the one order the runtime uses::

    ZoneGate -> RetryingKeyProvider -> CountingKeyProvider -> back end (memory, PKCS#11)

* the zone gate is outermost: a zone this process did not open is refused before
  anything is retried, counted or sent to the store;
* retry sits above counting, so every attempt that reaches the store is counted;
* counting (``hsm_calls``) is innermost: it counts the key operations sent to the back
  end (version lookups, wraps, unwraps, HMAC derivations), failed ones included. Opening,
  login and ``ping`` are not key operations. A back end may look a key handle up inside
  one operation the first time it uses that key; that lookup is part of the operation.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from zoneapp.keys.api import KeyProvider
from zoneapp.keys.base import (
    KeyLoginError,
    KeyUnavailableError,
    ZoneNotPermittedError,
    validate_zone,
)
from zoneapp.keys.retry import Backoff, Sleep, retry

__all__ = [
    "DEFAULT_KEY_BACKOFF",
    "CountingKeyProvider",
    "KeyCalls",
    "KeyProviderWrapper",
    "RetryingKeyProvider",
    "ZoneGate",
    "runtime_stack",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Three attempts, 50 ms then 100 ms apart: a blip costs 150 ms, an outage is an error
#: (the boundary guard then holds the batch with its own, unbounded backoff).
DEFAULT_KEY_BACKOFF = Backoff(first=0.05, maximum=1.0, attempts=3)


class KeyProviderWrapper(KeyProvider):
    """Delegates every call to ``inner``; a wrapper overrides only what it adds."""

    def __init__(self, inner: KeyProvider) -> None:
        self._inner = inner

    @property
    def inner(self) -> KeyProvider:
        return self._inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._inner!r})"

    async def open(self, zones: Collection[str]) -> None:
        await self._inner.open(zones)

    async def close(self) -> None:
        await self._inner.close()

    async def ping(self) -> None:
        await self._inner.ping()

    async def current_kek_version(self, zone: str) -> int:
        return await self._inner.current_kek_version(zone)

    async def wrap_dek(self, zone: str, version: int, dek: bytes, aad: bytes) -> bytes:
        return await self._inner.wrap_dek(zone, version, dek, aad)

    async def unwrap_dek(self, zone: str, version: int, wrapped: bytes, aad: bytes) -> bytes:
        return await self._inner.unwrap_dek(zone, version, wrapped, aad)

    async def derive_hmac_key(self, zone: str, purpose: bytes) -> bytes:
        return await self._inner.derive_hmac_key(zone, purpose)


class KeyCalls:
    """Key operations sent to the store, by operation (``version``, ``wrap``, ``unwrap``,
    ``derive``); owned by whoever composes the stack, read for metrics and the benchmark."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    def __repr__(self) -> str:
        return f"KeyCalls({dict(sorted(self.by_operation.items()))})"


class CountingKeyProvider(KeyProviderWrapper):
    """Counts each key operation that reaches ``inner`` into ``calls``."""

    def __init__(self, inner: KeyProvider, calls: KeyCalls | None = None) -> None:
        super().__init__(inner)
        self.calls = calls if calls is not None else KeyCalls()

    @property
    def hsm_calls(self) -> int:
        return self.calls.total

    async def current_kek_version(self, zone: str) -> int:
        self.calls.by_operation["version"] += 1
        return await self._inner.current_kek_version(zone)

    async def wrap_dek(self, zone: str, version: int, dek: bytes, aad: bytes) -> bytes:
        self.calls.by_operation["wrap"] += 1
        return await self._inner.wrap_dek(zone, version, dek, aad)

    async def unwrap_dek(self, zone: str, version: int, wrapped: bytes, aad: bytes) -> bytes:
        self.calls.by_operation["unwrap"] += 1
        return await self._inner.unwrap_dek(zone, version, wrapped, aad)

    async def derive_hmac_key(self, zone: str, purpose: bytes) -> bytes:
        self.calls.by_operation["derive"] += 1
        return await self._inner.derive_hmac_key(zone, purpose)


class ZoneGate(KeyProviderWrapper):
    """After ``open(zones)`` only those zones' keys are usable; before ``open`` and after
    ``close`` none are. A refused call raises ZoneNotPermittedError without calling
    ``inner``: a lower-zone worker never sends a higher zone's key operation to the store.
    """

    def __init__(self, inner: KeyProvider) -> None:
        super().__init__(inner)
        self._opened: frozenset[str] | None = None

    @property
    def opened_zones(self) -> frozenset[str]:
        """Zones whose keys may be used (empty before ``open``)."""
        return self._opened or frozenset()

    def __repr__(self) -> str:
        return f"ZoneGate({self._inner!r}, opened={sorted(self.opened_zones)})"

    def _check(self, zone: str) -> None:
        validate_zone(zone)
        if self._opened is None:
            raise ZoneNotPermittedError(
                f"zone {zone!r} is not usable: the key provider is not open"
            )
        if zone not in self._opened:
            raise ZoneNotPermittedError(f"zone {zone!r} was not opened by this process")

    async def open(self, zones: Collection[str]) -> None:
        opened = frozenset(validate_zone(z) for z in zones)
        await self._inner.open(opened)
        self._opened = opened

    async def close(self) -> None:
        self._opened = None
        await self._inner.close()

    async def current_kek_version(self, zone: str) -> int:
        self._check(zone)
        return await self._inner.current_kek_version(zone)

    async def wrap_dek(self, zone: str, version: int, dek: bytes, aad: bytes) -> bytes:
        self._check(zone)
        return await self._inner.wrap_dek(zone, version, dek, aad)

    async def unwrap_dek(self, zone: str, version: int, wrapped: bytes, aad: bytes) -> bytes:
        self._check(zone)
        return await self._inner.unwrap_dek(zone, version, wrapped, aad)

    async def derive_hmac_key(self, zone: str, purpose: bytes) -> bytes:
        self._check(zone)
        return await self._inner.derive_hmac_key(zone, purpose)


class RetryingKeyProvider(KeyProviderWrapper):
    """Retries KeyUnavailableError (the store is unreachable, the session or login was
    lost) with :data:`DEFAULT_KEY_BACKOFF`, then raises it: fail closed.

    Nothing else is retried: a refused zone, an unknown version or a tampered wrapped key
    is an answer, not an outage; nor is a refused PIN (KeyLoginError), which an HSM
    counts towards locking the token. ``ping`` is not retried either (a health probe reports
    what it sees), nor ``close``. Every retried operation is safe to repeat.
    """

    def __init__(
        self,
        inner: KeyProvider,
        backoff: Backoff = DEFAULT_KEY_BACKOFF,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(inner)
        self.backoff = backoff
        self._sleep = sleep

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        def on_retry(attempt: int, delay: float, exc: BaseException) -> None:
            # KeyProviderError messages never carry key material or PINs.
            log.warning("key store: %s failed (%s); retry %d in %.2fs", what, exc, attempt, delay)

        return await retry(
            call,
            self.backoff,
            (KeyUnavailableError,),
            sleep=self._sleep,
            on_retry=on_retry,
            never=(KeyLoginError,),
        )

    async def open(self, zones: Collection[str]) -> None:
        await self._retry("open", lambda: self._inner.open(zones))

    async def current_kek_version(self, zone: str) -> int:
        return await self._retry(
            "KEK version lookup", lambda: self._inner.current_kek_version(zone)
        )

    async def wrap_dek(self, zone: str, version: int, dek: bytes, aad: bytes) -> bytes:
        return await self._retry("wrap", lambda: self._inner.wrap_dek(zone, version, dek, aad))

    async def unwrap_dek(self, zone: str, version: int, wrapped: bytes, aad: bytes) -> bytes:
        return await self._retry(
            "unwrap", lambda: self._inner.unwrap_dek(zone, version, wrapped, aad)
        )

    async def derive_hmac_key(self, zone: str, purpose: bytes) -> bytes:
        return await self._retry(
            "HMAC derivation", lambda: self._inner.derive_hmac_key(zone, purpose)
        )


def runtime_stack(
    backend: KeyProvider,
    *,
    calls: KeyCalls | None = None,
    backoff: Backoff = DEFAULT_KEY_BACKOFF,
    sleep: Sleep = asyncio.sleep,
) -> ZoneGate:
    """The provider a worker uses: gate -> retry -> counting -> ``backend``."""
    return ZoneGate(RetryingKeyProvider(CountingKeyProvider(backend, calls), backoff, sleep=sleep))
