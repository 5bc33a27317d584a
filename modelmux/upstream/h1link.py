"""The receive side of one HTTP/1.1 client connection: an asyncio.Protocol over a client parser.

Owns the socket, the connection's state, the back-pressured buffer of received bytes, the
wake-ups that hand what arrived to whoever reads (a waiting reader, a splice's consumer or a
watcher) and the decision to keep the connection alive. Sending a request and the ways of
reading its response are ``connection.HTTP11Connection``, which extends this class.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
from collections import deque
from collections.abc import Callable
from typing import Literal, cast

import h11

from modelmux.http1.client import Backend, client_parser
from modelmux.http1.common import END, NEED_DATA, HTTP1ProtocolError
from modelmux.upstream.deadline import WaitTimer
from modelmux.upstream.errors import UpstreamClosed, UpstreamProtocolError
from modelmux.upstream.origin import Origin

__all__ = ["HIGH_WATER", "LOW_WATER", "MAX_HEAD_SIZE", "H1Link", "LinkState"]

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
MAX_HEAD_SIZE = 64 * 1024


class LinkState(enum.Enum):
    """Where one HTTP/1.1 connection is in its life; a pool sees it through the predicates."""

    NEW = "new"  # handed to a request, not connected yet
    ACTIVE = "active"  # one request in flight, until its response is released
    IDLE = "idle"  # connected, kept alive, free
    CLOSED = "closed"


class H1Link(asyncio.Protocol):
    """One HTTP/1.1 connection's state and what the peer sends, one request at a time.

    Reading pauses above ``high_water`` unread bytes and resumes at ``low_water``. A pool
    knows it only by ``is_available``/``has_expired``/``is_idle``/``is_closed`` (and
    ``claim``/``abort``).
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
        self._state = LinkState.NEW
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
        return self._state is LinkState.IDLE

    def is_idle(self) -> bool:
        return self._state is LinkState.IDLE

    def is_closed(self) -> bool:
        return self._state is LinkState.CLOSED

    def has_expired(self, now: float) -> bool:
        """Closed, or idle for longer than its keep-alive expiry (``now`` on the loop clock)."""
        if self._state is LinkState.CLOSED:
            return True
        expires = self._expires_at
        return self._state is LinkState.IDLE and expires is not None and now >= expires

    @property
    def expires_at(self) -> float | None:
        """Loop time at which an idle connection expires; None while busy or without expiry."""
        return self._expires_at if self._state is LinkState.IDLE else None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received from the socket and not yet parsed (the back-pressured buffer)."""
        return self._buffered

    @property
    def reading_paused(self) -> bool:
        return self._reading_paused

    def claim(self) -> None:
        """Reserve this idle connection for one request: the pool's synchronous hand-over."""
        if self._state is not LinkState.IDLE:
            raise RuntimeError(f"connection is {self._state.value}, not idle")
        self._state = LinkState.ACTIVE
        self._expires_at = None

    def claim_fresh(self, now: float) -> bool:
        """``claim`` this connection if it is idle and not expired at ``now``; False if not
        (``is_available`` and ``has_expired`` in one call, for the pool's lending)."""
        if self._state is not LinkState.IDLE:
            return False
        expires = self._expires_at
        if expires is not None and now >= expires:
            return False
        self._state = LinkState.ACTIVE
        self._expires_at = None
        return True

    def abort(self) -> None:
        """Close now, without a graceful goodbye: errors, cancellation, eviction, shutdown."""
        self._state = LinkState.CLOSED
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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(transport)

    def _attach(self, transport: asyncio.BaseTransport) -> None:
        # uvloop may return from create_connection before calling connection_made
        if self._transport is not None:
            return
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._closed_fut = asyncio.get_running_loop().create_future()
        if self._state is LinkState.CLOSED:  # aborted while connecting
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        on_wake = self._on_wake
        if on_wake is not None and not self._incoming:  # watched: straight to the parser
            self._parser.receive_data(data)
            on_wake()
            return
        if self._state is LinkState.IDLE or self._state is LinkState.CLOSED:
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
        if self._state is LinkState.IDLE:
            self._state = LinkState.CLOSED
        self._wake()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._timer.stop()
        self._lost_exc = exc
        if self._state is not LinkState.ACTIVE:
            self._state = LinkState.CLOSED
        self._writing_paused = False
        self._wake()
        if self._closed_fut is not None and not self._closed_fut.done():
            self._closed_fut.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    def response_closed(self) -> None:
        """The response was read to the end or abandoned: go idle if reusable, else close."""
        if self._state is not LinkState.ACTIVE:
            return
        # The timer stays armed while idle: the next request's first-byte wait reuses it
        # (a wait with no deadline lets it lapse), so a pooled request arms no loop timer.
        self._timer.finish()
        if not self._reusable():
            self.abort()
            return
        self._parser.start_next_cycle()
        self._state = LinkState.IDLE
        if self._keepalive_expiry is not None:
            self._expires_at = asyncio.get_running_loop().time() + self._keepalive_expiry

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

    def _wake(self) -> None:
        if self._pushed is not None:
            self._pump()
        elif self._on_wake is not None:
            self._on_wake()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

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

    def _collect(self, parts: list[bytes], *, settle: bool) -> Literal[True] | Exception | None:
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
                elif self._state is LinkState.CLOSED:
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

    def _keep(self, outcome: Literal[True] | Exception | None) -> None:
        """Keep an END or an error met past the bytes handed out, for the next read."""
        if outcome is True:
            self._body_end = True
        elif outcome is not None:
            self._deferred = outcome

    def _pop(self) -> bytes:
        data = self._incoming.popleft()
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= self._low_water:
            self._reading_paused = False
            if self._transport is not None and not self._transport.is_closing():
                self._transport.resume_reading()
        return data

    def _parse_error(self, exc: Exception) -> Exception:
        """What a parser error means here: a cut-short body once the upstream has closed."""
        if self._eof and not isinstance(exc, UpstreamProtocolError):
            error = self._closed_error("mid-response")
            error.__cause__, error.__suppress_context__ = exc, True
            return error
        return exc

    def _closed_error(self, when: str) -> UpstreamClosed:
        how = "reset" if isinstance(self._lost_exc, ConnectionResetError) else "closed"
        return UpstreamClosed(f"{self._label}: connection {how} by upstream {when}")
