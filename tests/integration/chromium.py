"""Headless Chromium for the zone map tests: ``--dump-dom``/``--screenshot`` runs, and a
tiny Chrome DevTools Protocol client (aiohttp's websocket) that records every request
the page makes, so a test can prove where a key travels. No Playwright download.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.waiting import async_wait_for

#: Flags for a quiet, self-contained headless browser (no network but the page's own).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "the zone map test needs Chromium: `apt-get install -y chromium` "
            "(scripts/bootstrap.sh installs it)",
            pytrace=False,
        )
    return path


@contextlib.contextmanager
def _profile() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="zoneapp-chromium-") as profile:
        yield profile


def run_chromium(url: str, *args: str, budget_ms: int = 10_000) -> subprocess.CompletedProcess[str]:
    """One headless run on a new empty profile, ``--virtual-time-budget`` ``budget_ms``."""
    with _profile() as profile:
        return subprocess.run(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                "--window-size=1400,900",
                f"--virtual-time-budget={budget_ms}",
                *args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HOME": profile},
            check=False,
        )


@dataclass
class PageVisit:
    """What a page did while it was watched."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


@contextlib.asynccontextmanager
async def _browser() -> AsyncIterator[str]:
    """A headless Chromium with remote debugging on a free port; yields its ws URL."""
    with _profile() as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1400,900",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HOME": profile},
        )
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 30
            ws_url = None
            while ws_url is None and time.monotonic() < deadline:
                line = await asyncio.wait_for(proc.stderr.readline(), 30)
                if not line:
                    break
                found = _LISTENING.search(line.decode(errors="replace"))
                ws_url = found[1] if found else None
            assert ws_url, "Chromium did not open its DevTools port"
            drain = asyncio.create_task(proc.stderr.read())
            yield ws_url
            drain.cancel()
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


class _Session:
    """CDP over one websocket: numbered commands, events collected as they come."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, 30)
        assert "error" not in reply, (method, reply["error"])
        result: dict[str, Any] = reply.get("result", {})
        return result


async def _visit(
    url: str, expressions: dict[str, str], ready: Callable[[PageVisit], bool], timeout: float
) -> PageVisit:
    async with (
        _browser() as ws_url,
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url, max_msg_size=64 * 1024 * 1024) as ws,
    ):
        cdp = _Session(ws)
        target = await cdp.send("Target.createTarget", {"url": "about:blank"})
        attached = await cdp.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        session = attached["sessionId"]
        await cdp.send("Network.enable", {}, session)
        await cdp.send("Page.enable", {}, session)
        await cdp.send("Page.navigate", {"url": url}, session)

        async def look() -> PageVisit | None:
            visit = await _snapshot(cdp, session, expressions)
            return visit if ready(visit) else None

        try:
            return await async_wait_for(look, timeout, f"the page at {url} to be ready")
        finally:
            cdp.reader.cancel()


async def _snapshot(cdp: _Session, session: str, expressions: dict[str, str]) -> PageVisit:
    """The page now: ``expressions`` evaluated in it, and every request it has sent."""
    visit = PageVisit()
    for name, expression in expressions.items():
        result = await cdp.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        visit.values[name] = result.get("result", {}).get("value")
    for event in list(cdp.events):
        method = event.get("method")
        params = event.get("params", {})
        if method == "Network.requestWillBeSent":
            request = params.get("request", {})
            visit.requests.append(
                {
                    "id": params.get("requestId"),
                    "url": request.get("url", ""),
                    "headers": request.get("headers", {}),
                }
            )
        elif method == "Network.requestWillBeSentExtraInfo":
            visit.requests.append(
                {"id": params.get("requestId"), "url": "", "headers": params["headers"]}
            )
    return visit


def visit_page(
    url: str,
    expressions: dict[str, str],
    ready: Callable[[PageVisit], bool],
    timeout: float = 30.0,
) -> PageVisit:
    """Open ``url`` in a fresh headless Chromium and watch it until ``ready`` holds for
    what it shows: ``expressions`` evaluated in the page, and every request it sent (URL
    and headers, as the network layer saw them). Fails after ``timeout`` seconds."""
    return asyncio.run(_visit(url, expressions, ready, timeout))


def screenshot(url: str, path: Path, *, budget_ms: int = 10_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    result = run_chromium(url, f"--screenshot={path}", budget_ms=budget_ms)
    assert result.returncode == 0 and path.stat().st_size > 10_000, result.stderr[-2000:]
