"""HTTP/1.1 server connections: a sans-I/O backend behind a thin ``asyncio.Protocol``.

The backend (``modelmux.http1.server``: the fast twin pair by default, h11 as the reference)
parses and frames; this module owns the connection life cycle (keep-alive, pipelining, what a
passed deadline means, limits, read back-pressure, disconnects, protocol errors);
``h1_stream`` writes the response and ``h1_deadline`` keeps the timer. It knows nothing of
routes: each request becomes an ``Exchange`` run by the server's handler in its own task,
which is cancelled if the client goes away.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING

from modelmux.errors import (
    Headers,
    HeadersTooLarge,
    InvalidRequest,
    ModelMuxError,
    RequestTimeout,
    ServiceUnavailable,
)
from modelmux.http1.common import (
    END,
    NEED_DATA,
    PAUSED,
    HTTP1LocalError,
    HTTP1ProtocolError,
    RequestHead,
)
from modelmux.server.exchange import Exchange, serve_exchange
from modelmux.server.h1_deadline import H1Deadline
from modelmux.server.h1_stream import CLOSE_HEADER, SERVER_HEADER, H1Stream

if TYPE_CHECKING:
    from modelmux.server.host import Host
    from modelmux.server.lane import Lane, Ticket

log = logging.getLogger("modelmux.server")

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_JSON = (b"content-type", b"application/json")


class H1Protocol(H1Stream, H1Deadline, asyncio.Protocol):
    """One HTTP/1.1 client connection: its send side is ``H1Stream``, its deadline
    ``H1Deadline``."""

    def __init__(self, server: Host) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.conn = server.http1(self.limits.max_head_bytes)
        self.transport: asyncio.Transport | None = None
        self.client = "-"
        self.exchange: Exchange | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # the loop time _timer was set for
        self._deadline: float | None = None  # the head or idle deadline now running, or None
        self._head_started = False
        self._heads = 0  # request heads parsed on this connection
        self._read_paused = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._lane: Lane | None = None  # the handler's lane, waiting for this request's body
        self._ticket: Ticket | None = None  # the lane holds this request
        self._lane_drain = False  # the lane answered; the exchange ends once the client drains

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = f"{peer[0]}:{peer[1]}"
        transport.set_write_buffer_limits(high=self.limits.write_buffer_high)
        if len(self.server.connections) >= self.limits.max_connections:
            log.warning("refusing %s: %d connections open (max_connections)",
                        self.client, len(self.server.connections))
            self._write_raw_error(ServiceUnavailable(
                "the server has too many open connections; retry later", code="too_many_connections"))
            return
        self.server.connections.add(self)
        self._arm(self.limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        if self.exchange is None and not self._head_started:
            # A new head begins. It usually arrives whole: the header timer is armed only
            # when it did not (a timer armed and cancelled per request costs ~1 us).
            self._head_started = True
            heads = self._heads
            self._process()
            if self._heads == heads and not self.closed:
                self._arm(self.limits.header_timeout)
            return
        self._process()

    def eof_received(self) -> bool:
        # A client's EOF means it is gone (as nginx treats it): the transport closes and any
        # running handler is cancelled in connection_lost.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connection_lost(self)
        self._stop_timer()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        exchange = self.exchange
        if self._lane is not None and exchange is not None:  # gone while its body was coming
            self._start(exchange)
            log.info("client %s disconnected during %s %s", self.client, exchange.method, exchange.path)
            assert self.task is not None
            self.loop.call_soon(self.task.cancel)  # after its first step: as a cancelled handler
        elif self.task is not None and not self.task.done() and exchange is not None and not exchange.ended:
            log.info("client %s disconnected during %s %s", self.client, exchange.method, exchange.path)
            self.task.cancel()
        elif exchange is not None and (self._ticket is not None or self._lane_drain):
            if self._ticket is not None:
                log.info("client %s disconnected during %s %s", self.client, exchange.method,
                         exchange.path)
                self._ticket.cancel()
            self._ticket, self._lane_drain = None, False
            exchange.done()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        if self._lane_drain:
            self._lane_drain = False
            self._lane_end()

    def _process(self) -> None:
        assert self.transport is not None
        conn = self.conn
        while not self.closed and not self.transport.is_closing():
            try:
                event = conn.next_event()
            except HTTP1ProtocolError as exc:
                self._protocol_error(exc)
                return
            if type(event) is bytes:
                assert self.exchange is not None
                if not self.exchange.feed_body(event):
                    self._pause_reading()  # over the limit: do not read the rest
                    if self._lane is not None:
                        self._start(self.exchange)
                    return
            elif event is NEED_DATA:
                if self._lane is not None and self._deadline is None:  # the body comes later
                    self._arm(self.limits.body_timeout)  # then it goes to the handler
                return
            elif event is END:
                assert self.exchange is not None
                exchange = self.exchange
                exchange.finish_body()
                lane = self._lane
                if lane is not None:  # offered now the body is in; else its own task
                    self._lane = None
                    self._deadline = None  # _disarm, written out
                    try:
                        self._ticket = lane.take(exchange, self)
                    except Exception:  # a bug in the lane: the handler still answers
                        log.exception("lane failed taking %s %s", exchange.method, exchange.path)
                        self._ticket = None
                    if self._ticket is None:
                        self.task = self.loop.create_task(self._run(exchange))
            elif event is PAUSED:
                self._pause_reading()
                return
            else:
                assert isinstance(event, RequestHead)
                self._on_request(event)

    def _on_request(self, event: RequestHead) -> None:
        self._heads += 1
        self._disarm()
        headers: Headers = event.headers
        for name, _ in headers:  # a loop, not any(genexpr): that resumes a generator per header
            if name == b"http2-settings":
                if self.server.upgrade_h2c(self, event):
                    return
                break
        exchange = Exchange(
            self,
            event.method.decode("ascii"),
            event.target.decode("latin-1"),
            headers,
            http_version="1.1" if event.http_version == b"1.1" else event.http_version.decode(),
            client=self.client,
            max_body=self.limits.max_body_bytes,
            body_timeout=self.limits.body_timeout,
            declared_length=event.content_length,
        )
        self.exchange = exchange
        if exchange.body_too_large:
            self._pause_reading()
        else:
            lane = getattr(self.server.handler, "lane", None)
            if lane is not None and event.target in lane.targets and not event.expect_continue:
                self._lane = lane  # offered the request once its body is in (END)
                return
        self.task = self.loop.create_task(self._run(exchange))

    def _start(self, exchange: Exchange) -> None:
        """Run the handler for ``exchange`` in its own task (the lane did not take it)."""
        self._lane = None
        self.task = self.loop.create_task(self._run(exchange))

    def lane_finished(self) -> None:
        """The lane answered (``LaneHost``): end the exchange once the client took it."""
        self._ticket = None
        if self._write_paused and not self.closed:
            self._lane_drain = True  # as ``respond`` awaits the drain before the end
            return
        self._lane_end()

    def _lane_end(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.done()
        self._cycle_done()

    def lane_fallback(self, context: contextvars.Context | None = None
                      ) -> asyncio.Future[None] | None:
        """The lane gave the request back with nothing written (``LaneHost``)."""
        self._ticket = None
        if self.exchange is None or self.closed:
            return None
        self.task = self.loop.create_task(self._run(self.exchange), context=context)
        return self.task

    async def _run(self, exchange: Exchange) -> None:
        """The request's task: one frame over ``serve_exchange`` (each frame costs on every
        resume), then the next cycle."""
        try:
            await serve_exchange(self.server.handler, exchange, client=self.client,
                                 gone=self._gone, cut=self._close)
        except asyncio.CancelledError:
            self._close()  # cancelled with the client still there: shutdown or a protocol error
            raise
        finally:
            exchange.done()
        self.task = None
        self._cycle_done()

    def _gone(self) -> bool:
        return self.closed

    def _cycle_done(self) -> None:
        if self.closed:
            return
        conn = self.conn
        grace = self.server.handover_grace
        if not conn.reusable() or (self.server.draining and grace is None):
            self._close()
            return
        # Still keep-alive: this response went out before the drain began. After a hand-over
        # the client may send its next request right now; it gets a grace period and an answer
        # with ``Connection: close`` rather than a close racing it.
        conn.start_next_cycle()
        self.exchange = None
        self._head_started = bool(conn.trailing)
        idle = self.limits.keepalive_timeout if grace is None else min(grace, self.limits.keepalive_timeout)
        self._arm(self.limits.header_timeout if self._head_started else idle)
        if self._read_paused:
            self._read_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        self._process()

    def _protocol_error(self, exc: HTTP1ProtocolError) -> None:
        status = exc.status
        log.info("malformed request from %s: %s (%d)", self.client, exc, status)
        error: ModelMuxError
        if status == 431:
            error = HeadersTooLarge(f"request head is larger than {self.limits.max_head_bytes} bytes")
        else:
            error = InvalidRequest(f"malformed HTTP request: {exc}", code="bad_request")
            error.status = status
        self._abort_with(error)

    def _expired(self) -> None:
        """The head, body or idle deadline passed (``H1Deadline``)."""
        if self._lane is not None and self.exchange is not None and not self.closed:
            self._start(self.exchange)  # the body is slow: the handler waits for it
            return
        if self.exchange is not None or self.closed:
            return
        if self._head_started:
            log.info("request head from %s not complete in time; 408", self.client)
            self._abort_with(RequestTimeout("timed out waiting for the request head"))
        else:
            self._close()  # idle keep-alive connection

    def _pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def _abort_with(self, error: ModelMuxError) -> None:
        """Answer a connection-level error if nothing was sent yet, then close."""
        self._lane = None  # a request waiting for the lane gets no handler: it is answered here
        exchange = self.exchange
        if exchange is None or not exchange.started:
            if not self.conn.response_started:
                try:
                    body = error.body()
                    headers: Headers = [_JSON, SERVER_HEADER, CLOSE_HEADER,
                                        (b"content-length", str(len(body)).encode())]
                    out = self.conn.send_response(error.status, headers, end=True, body=body)
                    assert self.transport is not None
                    self.transport.write(out)
                    if exchange is not None:
                        exchange.started = exchange.ended = True
                        exchange.status = error.status
                except HTTP1LocalError:
                    pass
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self._close()

    def _write_raw_error(self, error: ModelMuxError) -> None:
        body = error.body()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (error.status, _REASONS.get(error.status, b""), len(body))
        )
        assert self.transport is not None
        self.transport.write(head + body)
        self.transport.close()
        self.closed = True

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._stop_timer()

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the current response."""
        if self.exchange is None:
            self._close()

    def retire(self, grace: float) -> None:
        """Graceful stop after an upgrade: an idle connection gets ``grace`` seconds for one
        more request (answered with ``Connection: close``); a busy one closes after its response."""
        if self.exchange is None and not self._head_started and not self.closed:
            self._arm(min(grace, self.limits.keepalive_timeout))

    def abort(self) -> None:
        """Drain time is over: cut the connection and cancel its handler."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()
