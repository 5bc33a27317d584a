"""One HTTP/2 client stream: the response head, its buffered body chunks and their release.

The connection (``h2link.H2Link``, the receive side of ``h2connection.HTTP2Connection``) feeds
it events; the consumer reads through ``receive_body_chunk``/``iter_bytes``, which hands
flow-control credit back as bytes are taken.
Closing a stream before its end resets that stream only, never the connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from modelmux.errors import Headers
from modelmux.upstream.deadline import WaitTimer
from modelmux.upstream.errors import StreamRefused, UpstreamClosed, map_errors
from modelmux.upstream.origin import Origin, ResponseHead

__all__ = ["H2ClientStream", "ClientStreamOwner", "StreamRefused"]


class ClientStreamOwner(Protocol):
    """What a stream asks of its connection (``h2link.H2Link``)."""

    origin: Origin
    label: str

    def acknowledge(self, sid: int, flow: int) -> None: ...
    def credit(self, sid: int, flow: int) -> None: ...
    def close_stream(self, stream: H2ClientStream, *, reset: bool) -> None: ...


class H2ClientStream:
    """One request/response exchange; the body is read through ``iter_bytes``/``read``."""

    def __init__(self, conn: ClientStreamOwner, sid: int) -> None:
        self.conn, self.sid = conn, sid
        self.status = 0
        self.headers: Headers = []
        self.reason = ""
        self.head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.chunks: deque[tuple[bytes, int]] = deque()
        self.buffered = 0  # received, not yet handed to the consumer
        self.ended = False
        self.sending = False  # the request body is still going out
        self.closed = False
        self.error: BaseException | None = None
        self.changed = asyncio.Event()
        self.read_timeout: float | None = None
        self._timer = WaitTimer(self._time_out)  # the read timeout, one timer for every read
        self._expired = False  # the current read's deadline passed
        self._push: Callable[[bytes], bool] | None = None  # splice: the body's consumer
        self._push_idle: float | None = None  # splice: the read timeout
        self._push_error: Exception | None = None  # splice: the consumer failed

    @property
    def origin(self) -> Origin:
        return self.conn.origin

    @property
    def response_head(self) -> ResponseHead:
        return ResponseHead(self.status, self.headers, self.reason)

    @property
    def is_closed(self) -> bool:
        return self.closed

    def get_header(self, name: bytes) -> bytes | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        while (chunk := await self.receive_body_chunk()) is not None:
            yield chunk

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_bytes()])

    async def receive_body_chunk(self, read_timeout: float | None = None) -> bytes | None:
        """Next body bytes (acknowledged to the peer as handed out), or None at the end.

        Every DATA frame already received comes out as one piece (a model's stream is one
        frame per event; under load many are waiting by the time the relay reads).

        ``read_timeout`` overrides the stream's own (``Timeouts.read`` of its request).
        """
        if not self.chunks:  # data already in needs no timer
            timeout = self.read_timeout if read_timeout is None else read_timeout
            with map_errors("read", self.conn.label):
                self._timer.start(None if timeout is None
                                  else asyncio.get_running_loop().time() + timeout)
                try:
                    while not self.chunks:
                        if self._over():
                            return None
                        self.changed.clear()
                        await self.changed.wait()
                finally:
                    self._timer.finish()
                    self._expired = False
        return self._take()

    async def splice(self, on_body: Callable[[bytes], bool],
                      read_timeout: float | None = None) -> bool:
        """Hand the body to ``on_body`` as DATA frames arrive, from the connection's read
        callback (``push``), until it returns False (returns False: later frames stay for the
        next read) or the stream ends (returns True). Errors as ``receive_body_chunk``."""
        timeout = self.read_timeout if read_timeout is None else read_timeout
        with map_errors("read", self.conn.label):
            if self.chunks and not on_body(self._take()):
                return False
            self._push, self._push_idle, self._push_error = on_body, timeout, None
            loop = asyncio.get_running_loop()
            self._timer.start(None if timeout is None else loop.time() + timeout)
            try:
                while True:
                    if self._push is None:  # the consumer said stop, or failed
                        if self._push_error is not None:
                            raise self._push_error
                        return False
                    if self._over():
                        return True
                    self.changed.clear()
                    await self.changed.wait()
            finally:
                self._push = None
                self._timer.finish()
                self._expired = False

    def push(self, data: bytes, flow: int) -> bool:
        """Connection side: give a DATA frame to the splicing consumer. False when nobody is
        splicing (the caller buffers the frame instead)."""
        on_body = self._push
        if on_body is None:
            return False
        self.conn.credit(self.sid, flow)
        try:
            keep = on_body(data)
        except Exception as exc:  # noqa: BLE001  # the consumer's failure is the splice's
            self._push_error = exc
            keep = False
        if not keep:
            self._push = None
            self.changed.set()
        elif self._push_idle is not None:
            self._timer.start(asyncio.get_running_loop().time() + self._push_idle)
        return True

    def _over(self) -> bool:
        """With nothing buffered: True once the body ended (the stream is then closed); raises
        the stream's error, a close, or TimeoutError past the read deadline; else False."""
        if self.error is not None:
            self.conn.close_stream(self, reset=False)
            raise self.error
        if self.ended:
            self.conn.close_stream(self, reset=False)
            return True
        if self.closed:
            raise UpstreamClosed(f"{self.conn.label}: stream {self.sid} was closed")
        if self._expired:
            raise TimeoutError
        return False

    def _take(self) -> bytes:
        """Every buffered DATA frame as one piece, acknowledged to the peer."""
        data, flow = self.chunks.popleft()
        if self.chunks:  # more DATA frames are in: one piece for all, as the HTTP/1.1 side does
            parts = [data]
            while self.chunks:
                more, more_flow = self.chunks.popleft()
                parts.append(more)
                flow += more_flow
            data = b"".join(parts)
        self.buffered -= len(data)
        self.conn.acknowledge(self.sid, flow)
        return data

    def _time_out(self) -> None:
        self._expired = True
        self.changed.set()

    def response_closed(self) -> None:
        """Done with the response: a body not read to the end resets this stream only."""
        self._timer.stop()
        self.conn.close_stream(self, reset=not self.ended)

    def abort(self) -> None:
        """Cancel this request: RST_STREAM(CANCEL) unless it already ended."""
        self._timer.stop()
        self.conn.close_stream(self, reset=not self.ended)

    async def aclose(self) -> None:
        self.response_closed()

    async def __aenter__(self) -> H2ClientStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def fail(self, exc: BaseException) -> None:
        self._timer.stop()
        if self.error is None and not self.ended:
            self.error = exc
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved: nobody may be waiting any more
        self.changed.set()
