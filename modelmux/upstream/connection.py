"""One HTTP/1.1 client connection: an asyncio.Protocol driving a sans-I/O client parser.

The parser is the fast backend or h11 (``modelmux.http1.client``, the pool's ``http1``).

Owns the socket, request framing, the response head, back-pressured body reads and the decision
to keep the connection alive. Pooling is not here: a pool sees a connection only through
``is_available``/``has_expired``/``is_idle``/``is_closed`` (and ``claim``/``abort``).
"""

from __future__ import annotations

import asyncio
import enum
import ssl
from collections import deque
from collections.abc import Callable
from typing import cast

import h11

from modelmux.config.settings import Timeouts
from modelmux.errors import Headers
from modelmux.http1.client import Backend, client_parser
from modelmux.http1.common import END, NEED_DATA, HTTP1ProtocolError
from modelmux.upstream.deadline import WaitTimer
from modelmux.upstream.dial import Handover
from modelmux.upstream.errors import (
    UpstreamClosed,
    UpstreamProtocolError,
    UpstreamTLSError,
    map_errors,
    raise_mapped,
)
from modelmux.upstream.origin import Origin, ResponseHead

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
MAX_HEAD_SIZE = 64 * 1024

class _State(enum.Enum):
    NEW = "new"  # handed to a request, not connected yet
    ACTIVE = "active"  # one request in flight, until its response is released
    IDLE = "idle"  # connected, kept alive, free
    CLOSED = "closed"


class HTTP11Connection(asyncio.Protocol):
    """One HTTP/1.1 connection to one origin, one request at a time.

    Created unconnected (already claimed by the request it was made for); the first
    ``handle_request`` connects. Reading pauses above ``high_water`` unread bytes and resumes
    at ``low_water``.
    """

    def __init__(
        self,
        origin: Origin,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float | None = None,
        high_water: int = HIGH_WATER,
        low_water: int = LOW_WATER,
        http1: Backend = "fast",
    ) -> None:
        self.origin = origin
        self._label = str(origin)
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._high_water = high_water
        self._low_water = min(low_water, high_water)
        self._state = _State.NEW
        self._parser = client_parser(http1, MAX_HEAD_SIZE)
        self._transport: asyncio.Transport | None = None
        self._incoming: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._lost_exc: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[bool] | None = None
        self._closed_fut: asyncio.Future[None] | None = None
        self._expires_at: float | None = None
        self._body_end = False  # END met while gathering body bytes; the next read returns it
        self._timer = WaitTimer(self._time_out)  # the read and first-byte timeouts
        self._deferred: Exception | None = None  # a parse error met while gathering
        self._push: Callable[[bytes], bool] | None = None  # splice: the body's consumer
        self._pushed: asyncio.Future[bool] | None = None  # splice: how the splice ended
        self._push_idle: float | None = None  # splice: the read timeout
        self._on_wake: Callable[[], None] | None = None  # watch: told of every wake-up
        self._on_timeout: Callable[[], None] | None = None  # watch: told when its wait expires

    def is_available(self) -> bool:
        """Can take a new request right now."""
        return self._state is _State.IDLE

    def is_idle(self) -> bool:
        return self._state is _State.IDLE

    def is_closed(self) -> bool:
        return self._state is _State.CLOSED

    def has_expired(self, now: float) -> bool:
        """Closed, or idle for longer than its keep-alive expiry (``now`` on the loop clock)."""
        if self._state is _State.CLOSED:
            return True
        expires = self._expires_at
        return self._state is _State.IDLE and expires is not None and now >= expires

    @property
    def expires_at(self) -> float | None:
        """Loop time at which an idle connection expires; None while busy or without expiry."""
        return self._expires_at if self._state is _State.IDLE else None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received from the socket and not yet parsed (the back-pressured buffer)."""
        return self._buffered

    @property
    def reading_paused(self) -> bool:
        return self._reading_paused

    def claim(self) -> None:
        """Reserve this idle connection for one request: the pool's synchronous hand-over."""
        if self._state is not _State.IDLE:
            raise RuntimeError(f"connection is {self._state.value}, not idle")
        self._state = _State.ACTIVE
        self._expires_at = None

    def abort(self) -> None:
        """Close now, without a graceful goodbye: errors, cancellation, eviction, shutdown."""
        self._state = _State.CLOSED
        self._incoming.clear()
        self._buffered = 0
        self._timer.stop()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.abort()
        self._wake()

    def wait_closed(self) -> asyncio.Future[None] | None:
        """A future done once the transport is gone; None if it never connected or is gone."""
        fut = self._closed_fut
        return None if fut is None or fut.done() else fut

    def adopt(self, handover: Handover) -> None:
        """Take a TLS connection ``dial.open_tls`` opened (ALPN chose HTTP/1.1 or nothing).

        The connection becomes claimed by the caller, whose ``handle_request`` sends at once.
        """
        if self._state is not _State.NEW:
            raise RuntimeError(f"connection is {self._state.value}, not new")
        self._state = _State.ACTIVE
        handover.hand_to(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(transport)

    def _attach(self, transport: asyncio.BaseTransport) -> None:
        # uvloop may return from create_connection before calling connection_made
        if self._transport is not None:
            return
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._closed_fut = asyncio.get_running_loop().create_future()
        if self._state is _State.CLOSED:  # aborted while connecting
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        on_wake = self._on_wake
        if on_wake is not None and not self._incoming:  # watched: straight to the parser
            self._parser.receive_data(data)
            on_wake()
            return
        if self._state is _State.IDLE or self._state is _State.CLOSED:
            self.abort()  # bytes nobody asked for: the stream is out of step
            return
        self._incoming.append(data)
        self._buffered += len(data)
        if self._buffered > self._high_water and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._state is _State.IDLE:
            self._state = _State.CLOSED
        self._wake()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._timer.stop()
        self._lost_exc = exc
        if self._state is not _State.ACTIVE:
            self._state = _State.CLOSED
        self._writing_paused = False
        self._wake()
        if self._closed_fut is not None and not self._closed_fut.done():
            self._closed_fut.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

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
        if self._state is _State.NEW:
            with map_errors("connect", self._label):
                await self._connect(timeouts.connect)
            self._state = _State.ACTIVE
        elif self._state is not _State.ACTIVE:
            raise RuntimeError(f"connection is {self._state.value}, not claimed")
        self._body_end, self._deferred = False, None
        loop = asyncio.get_running_loop()
        deadline = None if timeouts.first_byte is None else loop.time() + timeouts.first_byte
        try:  # map_errors("first_byte"), as a try: nothing to pay per request
            if self._eof or self._state is _State.CLOSED:
                raise self._closed_error("before the request was sent")
            transport = self._transport
            assert transport is not None
            transport.write(self._parser.send_request(method, target, headers, body))
            while self._writing_paused and not self._eof and self._state is _State.ACTIVE:
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

    def _collect(self, parts: list[bytes], *, settle: bool) -> bool | Exception | None:
        """Parse every body byte received so far into ``parts``: True once END is met, the
        error met, or None while more must arrive. With ``settle`` (nobody reads after this),
        a closed connection or the peer's EOF is taken to its end here too."""
        parser = self._parser
        while True:
            try:
                event = parser.next_event()
            except (h11.RemoteProtocolError, HTTP1ProtocolError) as exc:
                return exc
            if event is NEED_DATA:
                if self._incoming:
                    parser.receive_data(self._pop())
                elif not settle:
                    return None
                elif self._state is _State.CLOSED:
                    return UpstreamClosed(f"{self._label}: connection was closed locally")
                elif self._eof:
                    parser.receive_data(b"")
                else:
                    return None
            elif type(event) is bytes:
                if event:
                    parts.append(event)
            elif event is END:
                return True
            else:
                return UpstreamProtocolError(f"{self._label}: unexpected {event!r}")

    def _keep(self, outcome: bool | Exception | None) -> None:
        """Keep an END or an error met past the bytes handed out, for the next read."""
        if outcome is True:
            self._body_end = True
        elif outcome is not None:
            self._deferred = outcome

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

    def _pump(self) -> None:
        """Splice: parse what arrived, give its body bytes to the consumer, settle the end."""
        fut, on_body = self._pushed, self._push
        if fut is None or on_body is None or fut.done():
            return
        parts: list[bytes] = []
        outcome = self._collect(parts, settle=True)
        try:
            stop = bool(parts) and not on_body(parts[0] if len(parts) == 1 else b"".join(parts))
        except Exception as exc:  # noqa: BLE001  # the consumer's failure is the splice's, not the loop's
            fut.set_exception(exc)
            return
        if stop:
            self._keep(outcome)  # the consumer is done; the next read sees the end or the error
            fut.set_result(False)
        elif outcome is True:
            fut.set_result(True)
        elif outcome is not None:
            fut.set_exception(self._parse_error(outcome))
        elif self._push_idle is not None:
            self._timer.start(asyncio.get_running_loop().time() + self._push_idle)

    def claim_fresh(self, now: float) -> bool:
        """``claim`` this connection if it is idle and not expired at ``now``; False if not
        (``is_available`` and ``has_expired`` in one call, for the pool's lending)."""
        if self._state is not _State.IDLE:
            return False
        expires = self._expires_at
        if expires is not None and now >= expires:
            return False
        self._state = _State.ACTIVE
        self._expires_at = None
        return True

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
        if (self._state is not _State.ACTIVE or self._eof or transport is None
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
            elif self._state is _State.CLOSED:
                raise UpstreamClosed(f"{self._label}: connection was closed locally")
            elif self._eof:
                parser.receive_data(b"")
            else:
                return NEED_DATA

    def response_closed(self) -> None:
        """The response was read to the end or abandoned: go idle if reusable, else close."""
        if self._state is not _State.ACTIVE:
            return
        # The timer stays armed while idle: the next request's first-byte wait reuses it
        # (a wait with no deadline lets it lapse), so a pooled request arms no loop timer.
        self._timer.finish()
        if not self._reusable():
            self.abort()
            return
        self._parser.start_next_cycle()
        self._state = _State.IDLE
        if self._keepalive_expiry is not None:
            self._expires_at = asyncio.get_running_loop().time() + self._keepalive_expiry

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
        if self._state is _State.CLOSED:
            raise UpstreamClosed(f"{self._label}: connection closed while it was being opened")
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn not in (None, "http/1.1"):
            raise UpstreamTLSError(f"{self._label}: ALPN chose {alpn!r}, only http/1.1 is spoken")

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
            elif self._state is _State.CLOSED:
                raise UpstreamClosed(f"{self._label}: connection was closed locally")
            elif self._eof:
                parser.receive_data(b"")
            else:
                limit = deadline
                if idle is not None:
                    until = asyncio.get_running_loop().time() + idle
                    limit = until if limit is None else min(limit, until)
                await self._wait(limit)

    def _raise_deferred(self) -> None:
        """Raise the parse error an earlier read met after the bytes it returned, if any."""
        deferred = self._deferred
        if deferred is not None:
            self._deferred = None
            raise self._parse_error(deferred)

    def _parse_error(self, exc: Exception) -> Exception:
        """What a parser error means here: a cut-short body once the upstream has closed."""
        if self._eof and not isinstance(exc, UpstreamProtocolError):
            error = self._closed_error("mid-response")
            error.__cause__, error.__suppress_context__ = exc, True
            return error
        return exc

    def _pop(self) -> bytes:
        data = self._incoming.popleft()
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= self._low_water:
            self._reading_paused = False
            if self._transport is not None and not self._transport.is_closing():
                self._transport.resume_reading()
        return data

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

    def _time_out(self) -> None:
        if self._on_timeout is not None:
            self._on_timeout()
            return
        pushed = self._pushed
        if pushed is not None and not pushed.done():
            pushed.set_exception(TimeoutError())
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(False)

    def _wake(self) -> None:
        if self._pushed is not None:
            self._pump()
        elif self._on_wake is not None:
            self._on_wake()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def _reusable(self) -> bool:
        parser = self._parser
        if parser.in_body:
            self._finish_from_buffer()
        transport = self._transport
        if self._eof or self._incoming or transport is None or transport.is_closing():
            return False
        return parser.keep_alive and parser.reusable()

    def _finish_from_buffer(self) -> None:
        """Consume body bytes that already arrived, so a fully received response can be pooled."""
        parser = self._parser
        while True:
            try:
                event = parser.next_event()
            except (h11.RemoteProtocolError, HTTP1ProtocolError):
                return
            if event is NEED_DATA and self._incoming:
                parser.receive_data(self._pop())
            elif type(event) is not bytes:
                return

    def _closed_error(self, when: str) -> UpstreamClosed:
        how = "reset" if isinstance(self._lost_exc, ConnectionResetError) else "closed"
        return UpstreamClosed(f"{self._label}: connection {how} by upstream {when}")

