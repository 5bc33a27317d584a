"""A loopback HTTP/1.1 server base for fake upstreams, with fault switches and split writes.

Requests are parsed with h11; each becomes a ``Request`` handed to ``handle``, which returns a
``Reply``. The reply's wire bytes are written in pieces chosen by ``split`` (whole, random
sizes, one byte at a time), draining and yielding to the loop between pieces. Faults: reset
(RST) after N events, hold after N events until the peer leaves, stall before the head.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import h11

Split = Callable[[bytes], list[bytes]]


def whole(data: bytes) -> list[bytes]:
    return [data] if data else []


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def random_pieces(seed: int, largest: int = 48) -> Split:
    """Split into pieces of 1..``largest`` bytes, reproducibly for ``seed``."""

    def split(data: bytes) -> list[bytes]:
        rng = random.Random(seed + len(data))
        out, at = [], 0
        while at < len(data):
            size = rng.randint(1, largest)
            out.append(data[at:at + size])
            at += size
        return out

    return split


SPLITS: dict[str, Split] = {
    "whole": whole,
    "random7": random_pieces(7),
    "random1234": random_pieces(1234, 9),
    "bytewise": bytewise,
}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """One response: a Content-Length ``body``, or ``events`` sent chunked, one chunk each."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    events: list[bytes] | None = None
    reset_after: int | None = None
    hold_after: int | None = None
    stall: bool = False


def json_reply(status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, [("content-type", "application/json"), *(headers or [])],
                 json.dumps(doc).encode())


class FakeServer:
    """Serve ``handle(request) -> Reply`` on 127.0.0.1:<ephemeral>, keep-alive, until closed."""

    def __init__(self, *, split: Split = whole) -> None:
        self.split = split
        self.requests: list[Request] = []
        self.connections = 0
        self.peer_left = 0  # connections the client closed while we held or stalled
        self.port = 0
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, woken by each server event; TimeoutError after."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        await self.stop(self._server)

    async def stop(self, server: asyncio.Server) -> None:
        """Close ``server`` and every connection in ``_writers``, waiting for ``_tasks``."""
        self._closing.set()
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h11.Connection(h11.SERVER)
        try:
            while (request := await self._read_request(conn, reader)) is not None:
                self.requests.append(request)
                self._notify()
                reply = await self.handle(request)
                if not await self._respond(conn, reply, reader, writer):
                    break
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)
            self._notify()

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in head.headers}
                return Request(head.method.decode(), head.target.decode(), headers, bytes(body))
            else:  # ConnectionClosed
                return None

    async def _respond(self, conn: h11.Connection, reply: Reply, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> bool:
        """Write ``reply``; False when the connection must close afterwards."""
        if reply.stall:
            await self._hold(reader)
            return False
        headers = list(reply.headers)
        if reply.events is None:
            headers.append(("content-length", str(len(reply.body))))
        else:
            headers.append(("transfer-encoding", "chunked"))
        wire = [conn.send(h11.Response(status_code=reply.status, headers=headers))]
        if reply.events is None:
            wire.append(conn.send(h11.Data(data=reply.body)) if reply.body else b"")
            wire.append(conn.send(h11.EndOfMessage()))
            await self._write(writer, b"".join(wire))  # type: ignore[arg-type]
            return True
        cut = reply.reset_after if reply.reset_after is not None else reply.hold_after
        for index, event in enumerate(reply.events):
            if cut is not None and index == cut:
                break
            wire.append(conn.send(h11.Data(data=event)))
        else:
            wire.append(conn.send(h11.EndOfMessage()))
        await self._write(writer, b"".join(wire))  # type: ignore[arg-type]
        if reply.reset_after is not None:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if reply.hold_after is not None:
            await self._hold(reader)
            return False
        return True

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        for piece in self.split(data):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)

    async def _hold(self, reader: asyncio.StreamReader) -> None:
        """Send nothing more until the peer closes (counted) or the server shuts down."""
        closing = asyncio.ensure_future(self._closing.wait())
        reading = asyncio.ensure_future(reader.read())
        try:
            await asyncio.wait([closing, reading], return_when=asyncio.FIRST_COMPLETED)
            if reading.done():  # EOF or a reset: either way the client left
                self.peer_left += 1
        finally:
            for fut in (closing, reading):
                fut.cancel()
            await asyncio.gather(closing, reading, return_exceptions=True)
            self._notify()
