"""Approved release from quarantine under the two-person rule (README "Approved release").

``model`` is the state machine (pure), ``exception`` applies one exception to a boundary,
``quarantine`` reads originals back, ``service`` runs the steps with their audit trail.
"""

from zoneapp.release.model import (
    Officer,
    Release,
    ReleaseBook,
    ReleaseError,
    ReleaseException,
    identity,
)
from zoneapp.release.quarantine import KafkaQuarantine, MemoryQuarantine
from zoneapp.release.service import (
    RELEASE_HEADER,
    MemoryReleaseStore,
    ReleaseService,
    ReleaseStore,
)

__all__ = [
    "RELEASE_HEADER",
    "KafkaQuarantine",
    "MemoryQuarantine",
    "MemoryReleaseStore",
    "Officer",
    "Release",
    "ReleaseBook",
    "ReleaseError",
    "ReleaseException",
    "ReleaseService",
    "ReleaseStore",
    "identity",
]
