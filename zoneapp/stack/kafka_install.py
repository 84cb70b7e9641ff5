"""``python -m zoneapp.stack.kafka_install``: fetch the pinned Apache Kafka (bootstrap.sh).

``--lock`` prints a new ``apache_kafka_lock.py`` (after changing ``KAFKA_VERSION``), from
a fetch that is not checked against the old lock.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from zoneapp.stack.apache_kafka import fetch_for_lock, install_kafka, write_lock
from zoneapp.stack.process import StackError


def main(argv: list[str]) -> int:
    if argv == ["--lock"]:
        with tempfile.TemporaryDirectory() as tmp:
            sys.stdout.write(write_lock(fetch_for_lock(Path(tmp))))
        return 0
    if argv:
        print("usage: python -m zoneapp.stack.kafka_install [--lock]", file=sys.stderr)
        return 2
    try:
        print(install_kafka())
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
