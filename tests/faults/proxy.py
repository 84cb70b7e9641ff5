"""A TCP proxy between the clients and the broker, to cut the network in the fault suite.

The stack's broker advertises the proxy's port, so every client connection (the
workers', the feed's, the checker's) goes through it. :meth:`TcpProxy.cut` aborts every
open connection and refuses new ones (closed on accept) until :meth:`TcpProxy.restore`:
to the clients, the broker is unreachable. It runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

HOST = "127.0.0.1"
CHUNK = 1 << 16


class TcpProxy:
    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.connections = 0
        self._cut = False
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self._server = self._call(
            asyncio.start_server(self._accept, HOST, self.listen_port, reuse_address=True)
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _call(self, coro: Coroutine[Any, Any, asyncio.Server]) -> asyncio.Server:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def cut(self) -> None:
        """Abort every connection and refuse new ones (done when this returns)."""

        async def abort() -> None:
            self._cut = True
            for writer in list(self._open):
                writer.transport.abort()
            self._open.clear()

        asyncio.run_coroutine_threadsafe(abort(), self._loop).result(timeout=10)

    def restore(self) -> None:
        """Let connections through again (done when this returns)."""

        async def resume() -> None:
            self._cut = False

        asyncio.run_coroutine_threadsafe(resume(), self._loop).result(timeout=10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if self._cut:  # cut while connecting upstream
            for w in (writer, up_writer):
                w.transport.abort()
            return
        self.connections += 1
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}
            for w in (writer, up_writer):
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
