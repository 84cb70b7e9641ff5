"""The embedded stack (tansu or Apache Kafka + redis-server + SoftHSM2) for dev, tests and bench.

``EmbeddedStack`` starts and stops it from Python; ``python -m zoneapp.stack run``
adds a worker, the demo feed, demo API keys and a live summary, and ``python -m
zoneapp.stack tail TOPIC`` prints a topic's records.
"""

from zoneapp.stack.embedded import EmbeddedStack, missing_prerequisites, tansu_binary
from zoneapp.stack.process import ManagedProcess, StackError, free_port
from zoneapp.stack.worker import READY_MARKER, WorkerProcess, faust_command

__all__ = [
    "READY_MARKER",
    "EmbeddedStack",
    "ManagedProcess",
    "StackError",
    "WorkerProcess",
    "faust_command",
    "free_port",
    "missing_prerequisites",
    "tansu_binary",
]
