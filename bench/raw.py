"""The physical ceiling: raw aiokafka consume -> produce of the same records.

``python -m bench.raw --bootstrap HOST:PORT --source T --dest T [--fetch-max-wait-ms N]``

No Faust, no sanitizing: every record of every partition of ``--source`` (from the
beginning) is produced to ``--dest`` with its key, value, headers and timestamp,
with the producer settings zoneapp's app uses (linger 10 ms, 1 MiB batches, acks
all) and the consumer's fetch wait the stack sets. Runs until SIGTERM. With
``--expect N`` it prints (JSON) how long the first N records took, from the first
fetch that returned records to the producer's acknowledgement of the N-th.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

READY = "raw: ready"
#: The key of the line printed once ``--expect`` records were forwarded and acknowledged.
TIMED = "raw_forwarded"


async def forward(
    bootstrap: str, source: str, dest: str, fetch_max_wait_ms: int, expect: int
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_poll_records=10_000,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=1_048_576, acks="all"
    )
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(source, p) for p in sorted(consumer.partitions_for_topic(source))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        print(READY, flush=True)
        count, first = 0, 0.0
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
            if batch and not first:
                first = time.monotonic()
            for records in batch.values():
                for r in records:
                    count += 1
                    await producer.send(
                        dest,
                        value=r.value,
                        key=r.key,
                        headers=list(r.headers),
                        timestamp_ms=r.timestamp,
                    )
            if expect and count >= expect:
                # Timed here, not by the bench's reader: all of a drain of raw records can
                # reach the reader in one fetch, and one fetch has no duration.
                await producer.flush()
                elapsed = time.monotonic() - first
                print(json.dumps({TIMED: count, "seconds": elapsed}), flush=True)
                expect = 0
    finally:
        await producer.stop()  # flushes what is buffered
        await consumer.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.raw", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--dest", required=True)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=50)
    parser.add_argument(
        "--expect", type=int, default=0, help="print the time the first N records took"
    )
    args = parser.parse_args(argv)
    asyncio.run(
        forward(args.bootstrap, args.source, args.dest, args.fetch_max_wait_ms, args.expect)
    )


if __name__ == "__main__":
    main()
