"""Loopback HTTP/1.1 test servers with fault switches, and a runner over asyncio and uvloop.

The server speaks HTTP/1.1 by hand on 127.0.0.1 (ephemeral port, optional TLS) and records
what it sees; faults wait on ``proceed`` so tests sequence them without sleeps. No internet.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

LOOPS = [pytest.param("asyncio", id="asyncio"), pytest.param("uvloop", id="uvloop")]
on_loops = pytest.mark.parametrize("loop", LOOPS)

_REASONS = {100: "Continue", 200: "OK", 404: "Not Found", 429: "Too Many Requests"}


def run(loop: str, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
    """Run ``coro`` on a fresh loop of the named kind, failing if it takes over ``timeout``."""
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro, timeout))


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait until ``predicate()`` holds, polling the condition; AssertionError after timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


def refused_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Reply:
    """One scripted response. ``fault``: stall_head, stall_body, reset_body, close_body, garbage.

    Body faults send the first half of ``body`` and then wait for ``server.proceed``.
    """

    status: int = 200
    body: bytes = b"hello"
    repeat: int = 1
    chunked: bool = False
    close: bool = False
    hang_up: bool = False  # close after the response without saying so
    informational: bool = False
    headers: list[tuple[str, str]] = field(default_factory=list)
    fault: str | None = None


@dataclass
class Seen:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    port: int

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


class HTTPServer:
    """A hand-written HTTP/1.1 server; replies from ``replies`` in order, then ``default``."""

    def __init__(self, *, default: Reply | None = None, ssl_context: ssl.SSLContext | None = None):
        self.default = default or Reply()
        self.replies: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self.ports: list[int] = []
        self.closed: list[int] = []
        self.alpn: list[str | None] = []
        self.proceed = asyncio.Event()
        self.port = 0
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def __aenter__(self) -> HTTPServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self.proceed.set()
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=3.0)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        port = writer.get_extra_info("peername")[1]
        self.ports.append(port)
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.alpn.append(ssl_object.selected_alpn_protocol())
        try:
            while (seen := await self._read_request(reader, port)) is not None:
                self.requests.append(seen)
                reply = self.replies.popleft() if self.replies else self.default
                if not await self._respond(reply, reader, writer):
                    break
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 3.0)
            except (OSError, ssl.SSLError, TimeoutError):
                writer.transport.abort()
            self.closed.append(port)
            self._writers.discard(writer)
            self._tasks.discard(task)

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader, port: int) -> Seen | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers.append((name.strip().lower().encode(), value.strip().encode()))
        length = int(dict(headers).get(b"content-length", b"0"))
        body = await reader.readexactly(length) if length else b""
        return Seen(method, target, headers, body, port)

    async def _stall(self, reader: asyncio.StreamReader) -> None:
        """Wait for ``proceed``, or for the client to hang up (so tests can watch for that)."""
        waits = [asyncio.ensure_future(self.proceed.wait()), asyncio.ensure_future(reader.read())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in waits:
                fut.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _respond(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if reply.fault == "stall_head":
            await self._stall(reader)
            return False
        if reply.fault == "garbage":
            writer.write(b"SPDY/9 banana\r\n\r\n")
            return False
        head = "HTTP/1.1 100 Continue\r\n\r\n" if reply.informational else ""
        head += f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Other')}\r\n"
        if reply.chunked:
            head += "Transfer-Encoding: chunked\r\n"
        else:
            head += f"Content-Length: {len(reply.body) * reply.repeat}\r\n"
        if reply.close:
            head += "Connection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in reply.headers) + "\r\n"
        writer.write(head.encode("latin-1"))
        frame = _chunk if reply.chunked else bytes
        if reply.fault in ("stall_body", "reset_body", "close_body"):
            writer.write(frame(reply.body[: len(reply.body) // 2]))
            await writer.drain()
            await self._stall(reader)
            if reply.fault == "reset_body":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            return False
        for _ in range(reply.repeat):
            writer.write(frame(reply.body))
            await writer.drain()
        if reply.chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        return not (reply.close or reply.hang_up)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""
