"""Make Faust's offset-gap handling loud.

When a partition's next record is not the offset after the last one read, Faust
records the hole as a "gap" and later commits past it: that is right for the
control records of transactional producers on real Kafka, but it also hides
records a broker failed to deliver. tansu does exactly that when a consumer
resumes from an offset inside a multi-record batch (after a restart or a
rebalance): it serves the next batch, and the rest of the current one is never
processed (README, known issues). This hook keeps Faust's behaviour but logs
every gap with its size, so such a hole is never silent.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.transport import consumer as faust_consumer

log = logging.getLogger("zoneapp.offsets")
_PATCHED = "_zoneapp_gap_logging"


def install() -> None:
    cls: Any = faust_consumer.Consumer
    if getattr(cls, _PATCHED, False):
        return
    original = cls._add_gap

    async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        log.warning(
            "offset gap on %s[%s]: offsets %d..%d were not delivered by the broker and will "
            "be committed as skipped (%d records)",
            tp.topic, tp.partition, offset_from, offset_to - 1, max(0, offset_to - offset_from),
        )  # fmt: skip
        await original(self, tp, offset_from, offset_to)

    cls._add_gap = _add_gap
    setattr(cls, _PATCHED, True)
