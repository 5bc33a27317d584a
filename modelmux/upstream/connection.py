"""One HTTP/1.1 client connection: connecting, sending requests, reading their responses.

The parser is the fast backend or h11 (``modelmux.http1.client``, the pool's ``http1``). A
response is read one of three ways: awaited chunk by chunk (``receive_body_chunk``), spliced
to a consumer from the read callback (``splice``), or watched by a caller that never awaits
(``send_watched``, ``read_ready``). What arrives, and when the connection is reused, is
``h1link.H1Link``'s. Pooling is not here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h11

from modelmux.config.settings import Timeouts
from modelmux.errors import Headers
from modelmux.http1.common import END, NEED_DATA, HTTP1ProtocolError
from modelmux.upstream.dial import Handover
from modelmux.upstream.errors import (
    UpstreamClosed,
    UpstreamProtocolError,
    UpstreamTLSError,
    map_errors,
    raise_mapped,
)
from modelmux.upstream.h1link import H1Link, LinkState
from modelmux.upstream.origin import ResponseHead

__all__ = ["HTTP11Connection"]


class HTTP11Connection(H1Link):
    """One HTTP/1.1 connection to one origin, one request at a time.

    Created unconnected (already claimed by the request it was made for); the first
    ``handle_request`` connects.
    """

    def adopt(self, handover: Handover) -> None:
        """Take a TLS connection ``dial.open_tls`` opened (ALPN chose HTTP/1.1 or nothing).

        The connection becomes claimed by the caller, whose ``handle_request`` sends at once.
        """
        if self._state is not LinkState.NEW:
            raise RuntimeError(f"connection is {self._state.value}, not new")
        self._state = LinkState.ACTIVE
        handover.hand_to(self)

    async def _connect(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.origin.host, self.origin.port
        context = self._ssl_context if self.origin.scheme == "https" else None
        async with asyncio.timeout(timeout):
            if context is None:
                transport, _ = await loop.create_connection(lambda: self, host, port)
            else:
                transport, _ = await loop.create_connection(
                    lambda: self, host, port, ssl=context, server_hostname=host
                )
        self._attach(transport)
        if self._state is LinkState.CLOSED:
            raise UpstreamClosed(f"{self._label}: connection closed while it was being opened")
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn not in (None, "http/1.1"):
            raise UpstreamTLSError(f"{self._label}: ALPN chose {alpn!r}, only http/1.1 is spoken")

    async def handle_request(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes,
        timeouts: Timeouts,
    ) -> ResponseHead:
        """Send one request and wait for its response head; then read the body in chunks.

        Raises:
            UpstreamConnectError, UpstreamTLSError, UpstreamTimeout, UpstreamProtocolError,
            UpstreamClosed: the connection is then unusable and should be aborted.
        """
        if self._state is LinkState.NEW:
            with map_errors("connect", self._label):
                await self._connect(timeouts.connect)
            self._state = LinkState.ACTIVE
        elif self._state is not LinkState.ACTIVE:
            raise RuntimeError(f"connection is {self._state.value}, not claimed")
        self._body_end, self._deferred = False, None
        loop = asyncio.get_running_loop()
        deadline = None if timeouts.first_byte is None else loop.time() + timeouts.first_byte
        try:  # map_errors("first_byte"), as a try: nothing to pay per request
            if self._eof or self._state is LinkState.CLOSED:
                raise self._closed_error("before the request was sent")
            transport = self._transport
            assert transport is not None
            transport.write(self._parser.send_request(method, target, headers, body))
            while self._writing_paused and not self._eof and self._state is LinkState.ACTIVE:
                await self._wait(deadline)  # the peer is not reading our request yet
            event = await self._next_event(deadline, None)
        except Exception as exc:
            raise_mapped(exc, "first_byte", self._label)
            raise
        if type(event) is not tuple:
            raise UpstreamProtocolError(f"{self._label}: unexpected {event!r}")
        status, response_headers, reason = event
        return ResponseHead(status, response_headers, reason.decode("latin-1"))

    async def receive_body_chunk(self, read_timeout: float | None) -> bytes | None:
        """The next body bytes as they arrive, or None at the end of the body.

        Raises:
            UpstreamTimeout: ``read_timeout`` seconds passed without a byte (phase "read").
            UpstreamClosed, UpstreamProtocolError: the body was cut short or malformed.
        """
        if self._body_end:
            self._body_end = False
            return None
        try:  # map_errors("read"), as a try: nothing to pay per request
            self._raise_deferred()
            while True:
                event = await self._next_event(None, read_timeout)
                if type(event) is bytes:
                    if event:
                        return self._gather(event)
                elif event is END:
                    return None
                else:
                    raise UpstreamProtocolError(f"{self._label}: unexpected {event!r}")
        except Exception as exc:
            raise_mapped(exc, "read", self._label)
            raise

    def _gather(self, first: bytes) -> bytes:
        """``first`` and every body byte already received after it, as one piece.

        A chunked upstream sends one HTTP chunk per event; under load many are buffered by the
        time the body is read, and one piece for all of them saves a relay step and a client
        write per chunk. Nothing waits here: what has not arrived is the next read's. An END
        or a parse error met on the way is kept for the next read.
        """
        parts = [first]
        self._keep(self._collect(parts, settle=False))
        return first if len(parts) == 1 else b"".join(parts)

    async def _next_event(self, deadline: float | None, idle: float | None) -> object:
        """The parser's next event (head tuple, bytes, END), feeding bytes and waiting for more."""
        parser = self._parser
        while True:
            try:
                event = parser.next_event()
            except (h11.RemoteProtocolError, HTTP1ProtocolError) as exc:
                raise self._parse_error(exc)
            if event is not NEED_DATA:
                return event
            if self._incoming:
                parser.receive_data(self._pop())
            elif self._state is LinkState.CLOSED:
                raise UpstreamClosed(f"{self._label}: connection was closed locally")
            elif self._eof:
                parser.receive_data(b"")
            else:
                limit = deadline
                if idle is not None:
                    until = asyncio.get_running_loop().time() + idle
                    limit = until if limit is None else min(limit, until)
                await self._wait(limit)

    async def _wait(self, deadline: float | None) -> None:
        """Wait for any wake-up (data, EOF, writable, abort); TimeoutError past ``deadline``."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiter = fut
        self._timer.start(deadline)
        try:
            woken = await fut
        finally:
            self._waiter = None
            self._timer.finish()
        if not woken:
            raise TimeoutError

    def _raise_deferred(self) -> None:
        """Raise the parse error an earlier read met after the bytes it returned, if any."""
        deferred = self._deferred
        if deferred is not None:
            self._deferred = None
            raise self._parse_error(deferred)

    async def splice(self, on_body: Callable[[bytes], bool], read_timeout: float | None) -> bool:
        """Hand the body to ``on_body`` from the read callback, with no task between them.

        Every read's body bytes go to ``on_body`` as one piece, as they arrive; it returns
        False to stop (the consumer is done, or its client is not keeping up), and what is left
        stays buffered for the next read or splice. Returns True once the body ended, False
        when ``on_body`` stopped.

        Raises:
            UpstreamTimeout: ``read_timeout`` seconds passed without a byte (phase "read").
            UpstreamClosed, UpstreamProtocolError: the body was cut short or malformed.
        """
        if self._body_end:
            self._body_end = False
            return True
        try:  # map_errors("read"), as a try: nothing to pay per stream
            self._raise_deferred()
            fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._push, self._pushed, self._push_idle = on_body, fut, read_timeout
            try:
                self._pump()
                return await fut
            finally:
                self._push = self._pushed = None
                self._timer.finish()
        except Exception as exc:
            raise_mapped(exc, "read", self._label)
            raise

    def send_watched(self, method: bytes, target: bytes, headers: Headers, body: bytes,
                     on_wake: Callable[[], None], on_timeout: Callable[[], None],
                     deadline: float | None) -> bool:
        """Write one request on this claimed, connected connection without waiting, then
        call ``on_wake`` from the read callback on every wake-up (data, EOF, close) and
        ``on_timeout`` past ``deadline`` (loop time; ``expire_at`` moves it): for a caller
        that reads with ``read_ready`` and never awaits. False (nothing written, nothing
        watched) when the connection cannot take a request now. ``unwatch`` or
        ``finish_watch`` ends the watch."""
        transport = self._transport
        if (self._state is not LinkState.ACTIVE or self._eof or transport is None
                or transport.is_closing()):
            return False
        self._body_end, self._deferred = False, None
        transport.write(self._parser.send_request(method, target, headers, body))
        self._on_wake, self._on_timeout = on_wake, on_timeout
        self._timer.start(deadline)
        return True

    def expire_at(self, deadline: float | None) -> None:
        """The watch's wait now lasts until ``deadline`` (None: without limit)."""
        self._timer.start(deadline)

    def unwatch(self) -> None:
        self._on_wake = self._on_timeout = None
        self._timer.finish()

    def finish_watch(self) -> None:
        """The watched response was read to its end: ``unwatch`` and ``response_closed``."""
        self._on_wake = self._on_timeout = None
        self.response_closed()

    def read_ready(self, parts: list[bytes]) -> object:
        """Parse what has arrived, never waiting: body bytes go onto ``parts``; returns the
        response head (a tuple) when met, END at the end of the body, or NEED_DATA.

        Raises:
            UpstreamClosed, UpstreamProtocolError (or the parser's error): the response
                was cut short or malformed.
        """
        parser = self._parser
        while True:
            try:
                event = parser.next_event()
            except (h11.RemoteProtocolError, HTTP1ProtocolError) as exc:
                raise self._parse_error(exc) from None
            if type(event) is bytes:
                parts.append(event)
            elif event is not NEED_DATA:
                return event
            elif self._incoming:
                parser.receive_data(self._pop())
            elif self._state is LinkState.CLOSED:
                raise UpstreamClosed(f"{self._label}: connection was closed locally")
            elif self._eof:
                parser.receive_data(b"")
            else:
                return NEED_DATA
