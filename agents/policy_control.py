"""How a running worker is told to re-read its policy: SIGHUP, or a change of the file.

Each worker reads its own ``ZONEAPP_POLICY`` (and ``ZONEAPP_POLICY_CANDIDATE``) file and
acts on its own signal or its own watch, so a command reaches every worker that is
signalled or that sees the file change (a shared volume or ConfigMap). ``POST
/policy/reload`` does the same on the worker asked and on every peer it can reach with
signed calls (``zoneapp.web.policy``). Without a handler SIGHUP would stop the worker, so
one is set when the app is built: a SIGHUP that comes while the worker is still starting
(before the event loop's handler) is held and acted on once the worker is up, and one
during shutdown is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import faust
from mode import Service

from zoneapp.runtime import Runtime

log = logging.getLogger(__name__)


#: SIGHUPs noted before a worker's loop handler was set: one list per process, so the
#: app that starts sees them whichever app module built the handler last.
_HELD: list[int] = []


def _hold_sighup() -> None:
    """Until the loop's handler is set, a SIGHUP is only noted (the default would end
    the process). Only the main thread may set a handler: an app built in another
    thread (a test's) holds nothing, and SIGHUP keeps its default there."""
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGHUP, lambda signum, _frame: _HELD.append(signum))


def install_policy_control(app: faust.App, runtime: Runtime) -> type[Service] | None:
    """Handle SIGHUP, load the candidate, and poll the files when watching is on; the
    service class registered with the app (None without a policy)."""
    if runtime.policy is None:
        return None
    switch = runtime.policies
    watch = runtime.settings.policy_watch
    tasks: set[asyncio.Task[object]] = set()
    _hold_sighup()

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
            if _HELD:
                log.info("policy: a SIGHUP came while the worker was starting; reloading now")
                _HELD.clear()
                reload("SIGHUP")
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
            # Stopping: a SIGHUP now changes nothing, and ends nothing.
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGHUP, signal.SIG_IGN)

    if watch:

        @app.timer(interval=watch)  # type: ignore[untyped-decorator]
        async def watch_policy_files() -> None:
            if switch.changed_on_disk():
                await switch.reload("watch")

    return PolicyControl
