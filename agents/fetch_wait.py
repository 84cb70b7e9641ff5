"""The consumer's fetch wait as a setting (``ZONEAPP_FETCH_MAX_WAIT_MS``).

Faust builds its worker consumer with ``fetch_max_wait_ms=1500`` written into
``AIOKafkaConsumerThread._create_worker_consumer``; no Faust setting reaches it.
On Apache Kafka the wait costs no latency: the broker answers a waiting fetch as
soon as data arrives (``fetch_min_bytes=1``). tansu, the embedded broker, answers
only when the wait runs out, so every hop adds about half the wait (README,
benchmark; ``/work/shared/ENVIRONMENT.md`` has the raw aiokafka figures).

The override is Faust's own extension point, not a patch: the app's transport
class (:meth:`zoneapp.application.ZoneApp._new_transport`) is
:class:`Transport`, a subclass of Faust's aiokafka transport whose consumer
creates :class:`ConsumerThread`. Its ``_create_worker_consumer`` lets Faust build
the consumer exactly as before and then sets the wait on it, before it starts
(aiokafka reads the value when ``start()`` builds its fetcher). If aiokafka ever
stops keeping the value where it is read, the worker refuses to start rather than
silently run with Faust's wait. With the setting unset (the default, what real
Kafka wants) the transport is Faust's own.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["FAUST_FETCH_MAX_WAIT_MS", "ConsumerThread", "Transport", "transport_for"]

#: What Faust hard-codes (faust-streaming 0.15.3), for documentation and tests.
FAUST_FETCH_MAX_WAIT_MS = 1500
#: Where AIOKafkaConsumer keeps the wait until ``start()`` hands it to its fetcher.
_ATTRIBUTE = "_fetch_max_wait_ms"
#: Faust's broker URL schemes that select its aiokafka driver.
AIOKAFKA_SCHEMES = frozenset({"kafka", "aiokafka"})


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread; the worker consumer gets the app's fetch wait."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait = fetch_max_wait_ms_of(self.app)
        if wait is not None:
            if not isinstance(getattr(consumer, _ATTRIBUTE, None), int):
                raise RuntimeError(
                    "ZONEAPP_FETCH_MAX_WAIT_MS: this aiokafka version does not keep the fetch "
                    f"wait in AIOKafkaConsumer.{_ATTRIBUTE}; unset the setting or pin aiokafka"
                )
            setattr(consumer, _ATTRIBUTE, wait)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`Consumer` (the producer is Faust's)."""

    Consumer = Consumer


def fetch_max_wait_ms_of(app: Any) -> int | None:
    """The app's fetch wait, or None for Faust's own (apps other than ZoneApp)."""
    wait = getattr(app, "fetch_max_wait_ms", None)
    return wait if isinstance(wait, int) else None


def transport_for(scheme: str, fetch_max_wait_ms: int | None) -> type[Any] | None:
    """The transport class to use, or None for Faust's choice (other drivers, no setting)."""
    if fetch_max_wait_ms is None or scheme.lower() not in AIOKAFKA_SCHEMES:
        return None
    return Transport
