"""The ``Stream`` an HTTP/1.1 connection offers the one exchange it carries at a time.

``H1Stream`` writes the response (head, body, end) through the sans-I/O backend, waits out
paused writes, answers ``Expect: 100-continue`` and resumes a paused body. It is a base of
``h1.H1Protocol``, which owns the state it reads (set in ``H1Protocol.__init__``) and the
connection's life cycle; methods found on a base cost a request nothing more.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from modelmux.errors import Headers
from modelmux.server.exchange import ClientDisconnected
from modelmux.server.host import http_date

if TYPE_CHECKING:
    from modelmux.http1.server import HTTP1Backend
    from modelmux.server.exchange import Exchange
    from modelmux.server.host import Host

SERVER_HEADER = (b"server", b"modelmux")
CLOSE_HEADER = (b"connection", b"close")


class H1Stream:
    """The send side of one HTTP/1.1 connection (``exchange.Stream``)."""

    server: Host
    conn: HTTP1Backend
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    exchange: Exchange | None
    closed: bool
    _read_paused: bool
    _write_paused: bool
    _drain_waiters: list[asyncio.Future[None]]

    def send_head(self, status: int, headers: Headers, *, end: bool, body: bytes = b"") -> None:
        if self.closed:
            raise ClientDisconnected()
        headers.append(SERVER_HEADER)
        headers.append((b"date", http_date.get()))
        if self.server.draining or not self.conn.request_complete:
            headers.append(CLOSE_HEADER)
        out = self.conn.send_response(status, headers, end=end, body=body)
        assert self.transport is not None
        self.transport.write(out)

    def send_data(self, data: bytes) -> None:
        if self.closed:
            raise ClientDisconnected()
        out = self.conn.send_data(data)
        assert self.transport is not None
        if out:
            self.transport.write(out)

    def send_end(self) -> None:
        if self.closed:
            raise ClientDisconnected()
        out = self.conn.send_end()
        assert self.transport is not None
        if out:
            self.transport.write(out)

    @property
    def write_blocked(self) -> bool:
        return self._write_paused or self.closed

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        if self.closed:
            raise ClientDisconnected()

    def open_connections(self) -> int:
        return len(self.server.connections)

    def send_continue(self) -> None:
        if not self.closed:
            out = self.conn.send_continue()
            if out:
                assert self.transport is not None
                self.transport.write(out)

    def resume_body(self) -> None:
        exchange = self.exchange
        if self._read_paused and exchange is not None and not exchange.body_too_large:
            if self.conn.in_body:
                self._read_paused = False
                assert self.transport is not None
                self.transport.resume_reading()
