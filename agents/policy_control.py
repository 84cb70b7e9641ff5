"""How a running worker is told to re-read its policy: SIGHUP, or a change of the file.

Each worker reads its own ``ZONEAPP_POLICY`` (and ``ZONEAPP_POLICY_CANDIDATE``) file and
acts on its own signal or its own watch, so a command reaches every worker that is
signalled or that sees the file change (a shared volume or ConfigMap). ``POST
/policy/reload`` does the same on the worker asked and on every peer it can reach with
signed calls (``zoneapp.web.policy``). Without a handler SIGHUP would stop the worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import faust
from mode import Service

from zoneapp.runtime import Runtime

log = logging.getLogger(__name__)


def install_policy_control(app: faust.App, runtime: Runtime) -> None:
    """Handle SIGHUP, load the candidate, and poll the files when watching is on."""
    if runtime.policy is None:
        return
    switch = runtime.policies
    watch = runtime.settings.policy_watch
    tasks: set[asyncio.Task[object]] = set()

    def reload(trigger: str) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(switch.reload(trigger))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    @app.service
    class PolicyControl(Service):
        """SIGHUP and the watch reload the policy files (zoneapp.pipeline.policies)."""

        async def on_start(self) -> None:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, reload, "SIGHUP")
            if switch.candidate_path:
                await switch.load_candidate("start")
            log.info(
                "policy: SIGHUP or POST /policy/reload re-reads %s%s; watching: %s",
                switch.path,
                f" and the candidate {switch.candidate_path}" if switch.candidate_path else "",
                f"every {watch:g} s" if watch else "off",
            )

        async def on_stop(self) -> None:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    if watch:

        @app.timer(interval=watch)  # type: ignore[untyped-decorator]
        async def watch_policy_files() -> None:
            if switch.changed_on_disk():
                await switch.reload("watch")
