"""An HTTP/1.1 upstream that declares a huge Content-Length and trickles the body a byte at a time.

It counts the body bytes it managed to write and records whether the client hung up before it
gave up (``limit`` bytes out, then it closes), so tests can tell a body refused unread from one
read until the upstream stopped.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Self

DECLARED = 2 * 1024 * 1024 * 1024


class Trickler:
    """Serve every request with ``Content-Length: declared`` and at most ``limit`` body bytes."""

    def __init__(self, *, declared: int = DECLARED, limit: int = 400, gap: float = 0.005) -> None:
        self.declared, self.limit, self.gap = declared, limit, gap
        self.sent = 0  # body bytes written, all connections together
        self.answered = 0  # responses whose head went out
        self.hung_up = 0  # connections the client closed before ``limit`` bytes were out
        self.gave_up = 0  # connections that reached ``limit`` without the client leaving
        self.done = asyncio.Event()  # set whenever a connection ends
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)
            self.done.set()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n" % self.declared)
        self.answered += 1
        await writer.drain()
        hangup = asyncio.ensure_future(_until_eof(reader))
        try:
            for _ in range(self.limit):
                if hangup.done():
                    break
                writer.write(b" ")
                await writer.drain()
                self.sent += 1
                await asyncio.wait([hangup], timeout=self.gap)
            if not hangup.done():
                self.gave_up += 1
                return
            self.hung_up += 1
        except ConnectionError:  # the client reset the connection under a write
            self.hung_up += 1
        finally:
            hangup.cancel()
            with suppress(asyncio.CancelledError):
                await hangup


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Return once the client closed its side (EOF or reset)."""
    with suppress(ConnectionError):
        while await reader.read(65536):
            pass
