"""HTTP/2 server connections: the ``h2`` state machine behind a thin ``asyncio.Protocol``.

Each HTTP/2 stream becomes an ``Exchange`` run by the server's handler in its own task, exactly
as on HTTP/1.1. Owned here: flow control in both directions, settings, RST_STREAM cancelling one
handler, GOAWAY on drain or idle, and the flood defences. It knows nothing of routes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from modelmux.config.settings import H2Settings
from modelmux.errors import Headers
from modelmux.server.exchange import Exchange, serve_exchange
from modelmux.server.h2_stream import (
    FrameBudget,
    H2cUpgrade,
    H2ServerStream,
    HeaderBlockBuffer,
    request_head,
    server_connection,
)

__all__ = ["H2Protocol", "H2Settings", "H2cUpgrade"]

if TYPE_CHECKING:
    from modelmux.server.host import Host

log = logging.getLogger("modelmux.server")


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 client connection (cleartext with prior knowledge, or ``h2`` by ALPN)."""

    def __init__(self, server: Host, settings: H2Settings | None = None, *,
                 upgrade: H2cUpgrade | None = None) -> None:
        self.server = server
        self._upgrade = upgrade
        self.limits = server.limits
        self.settings = settings or H2Settings()
        self.loop = asyncio.get_running_loop()
        self.conn = server_connection(self.settings)
        s = self.settings
        self.transport: asyncio.Transport | None = None
        self.client = "-"
        self.streams: dict[int, H2ServerStream] = {}
        self.closed = False
        self.write_paused = False
        self.goaway_sent = False
        self._resets = FrameBudget(s.max_resets_per_second)
        self._control = FrameBudget(s.max_control_frames_per_second)
        self._timer: asyncio.TimerHandle | None = None
        self._header_timer: asyncio.TimerHandle | None = None  # a header block left open
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = f"{peer[0]}:{peer[1]}"
        assert self.transport is not None
        self.transport.set_write_buffer_limits(high=self.limits.write_buffer_high)
        self.server.connections.add(self)
        upgrade = self._upgrade
        if upgrade is None:
            self.conn.initiate_connection()
        else:
            try:
                self.conn.initiate_upgrade_connection(upgrade.settings)
            except (ValueError, h2.exceptions.ProtocolError):  # binascii.Error is a ValueError
                log.info("bad HTTP2-Settings header from %s", self.client)
                self.transport.close()
                return
        extra = self.settings.initial_window_size - 65535
        if extra > 0:
            self.conn.increment_flow_control_window(extra)
        self.write_out()
        if upgrade is None:
            self._arm()
        else:  # the upgraded request is stream 1, already half-closed by the client
            self._start_stream(1, upgrade.method, upgrade.target, upgrade.headers, None, ended=True)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("HTTP/2 protocol error from %s: %s", self.client, exc)
            self.write_out()
            self._close()
            return
        for event in events:
            self._on_event(event)
            if self.closed:
                return
        self.write_out()
        self._watch_header_block()

    def _watch_header_block(self) -> None:
        """A header block must end within ``header_timeout`` (CONTINUATION never ending)."""
        block_open = cast(HeaderBlockBuffer, self.conn.incoming_buffer).block_open
        if block_open and self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout, self._calm, "header block not finished in time")
        elif not block_open:
            self._stop_header_timer()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connection_lost(self)
        self._disarm()
        self._stop_header_timer()
        for stream in list(self.streams.values()):
            self._stream_gone(stream)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            stream.wake()

    def _on_event(self, event: h2.events.Event) -> None:
        kind = type(event)
        if kind is h2.events.RequestReceived:
            self._on_request(event)  # type: ignore[arg-type]
        elif kind is h2.events.DataReceived:
            self._on_data(event)  # type: ignore[arg-type]
        elif kind is h2.events.StreamEnded:
            stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
            if stream is not None:
                stream.remote_ended = True
                if stream.exchange is not None:
                    stream.exchange.finish_body()
        elif kind is h2.events.StreamReset:
            stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
            if stream is not None:
                self._stream_gone(stream)
            if not self._resets.spend():
                self._calm("too many stream resets")
        elif kind is h2.events.WindowUpdated:
            sid = event.stream_id  # type: ignore[attr-defined]
            targets = self.streams.values() if sid == 0 else [self.streams[sid]] if sid in self.streams else []
            for stream in list(targets):
                self.flush_stream(stream)
        elif kind in (h2.events.PingReceived, h2.events.RemoteSettingsChanged):
            if not self._control.spend():
                self._calm("too many control frames")
        elif kind is h2.events.ConnectionTerminated:
            self._close()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        assert sid is not None and event.headers is not None
        if self.goaway_sent:
            # Opened before the client saw our GOAWAY, above its last stream id: the client knows
            # it was not processed. Discarded, not reset (RFC 9113 section 6.8): a RST_STREAM
            # after GOAWAY is a protocol error to some clients (the h2 library).
            return
        if self.server.draining and self.server.handover_grace is None:
            self.conn.reset_stream(sid, ErrorCodes.REFUSED_STREAM)  # not processed: safe to retry
            return
        method, target, headers, declared = request_head(event.headers)
        self._start_stream(sid, method, target, headers, declared,
                           ended=event.stream_ended is not None)

    def _start_stream(self, sid: int, method: str, target: str, headers: Headers,
                      declared: int | None, *, ended: bool) -> None:
        self._disarm()
        stream = H2ServerStream(self, sid)
        exchange = Exchange(stream, method, target, headers, http_version="2", client=self.client,
                            max_body=self.limits.max_body_bytes,
                            body_timeout=self.limits.body_timeout, declared_length=declared)
        stream.exchange = exchange
        self.streams[sid] = stream
        if ended:
            stream.remote_ended = True
            exchange.finish_body()
        task = self.loop.create_task(self._run(stream, exchange))
        stream.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id
        assert sid is not None
        size = event.flow_controlled_length or 0
        stream = self.streams.get(sid)
        if stream is None or stream.exchange is None:
            if size and not self.closed:
                self.conn.acknowledge_received_data(size, sid)
            return
        exchange = stream.exchange
        exchange.feed_body(event.data or b"")
        if stream.body_wanted or exchange.body_too_large:
            self.acknowledge(stream, size)
        else:
            stream.unacked += size

    def acknowledge(self, stream: H2ServerStream, size: int) -> None:
        """Reopen the windows for request data the exchange has taken in."""
        if size and not self.closed:  # a closed stream still owes the connection window
            self.conn.acknowledge_received_data(size, stream.sid)
            self.write_out()

    async def _run(self, stream: H2ServerStream, exchange: Exchange) -> None:
        try:
            await self._serve(stream, exchange)
        finally:
            exchange.done()
            self._stream_done(stream)

    async def _serve(self, stream: H2ServerStream, exchange: Exchange) -> None:
        await serve_exchange(self.server.handler, exchange, client=self.client,
                             gone=lambda: stream.closed,
                             cut=lambda: self._reset(stream, ErrorCodes.INTERNAL_ERROR))

    def flush_stream(self, stream: H2ServerStream) -> None:
        """Send what the windows allow of the stream's pending body; wake its writer if done."""
        if stream.closed or self.closed:
            stream.wake()
            return
        conn = self.conn
        while stream.pending:
            allowed = min(conn.local_flow_control_window(stream.sid), conn.max_outbound_frame_size,
                          len(stream.pending))
            if allowed <= 0:
                return  # parked until a WINDOW_UPDATE
            chunk = bytes(stream.pending[:allowed])
            del stream.pending[:allowed]
            conn.send_data(stream.sid, chunk, end_stream=stream.end_pending and not stream.pending)
            if not stream.pending and stream.end_pending:
                stream.end_pending = False
        if stream.end_pending:
            stream.end_pending = False
            conn.end_stream(stream.sid)
        stream.wake()

    def write_out(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _reset(self, stream: H2ServerStream, code: ErrorCodes) -> None:
        if not stream.closed and not self.closed:
            try:
                self.conn.reset_stream(stream.sid, code)
            except h2.exceptions.ProtocolError:
                pass
            self.write_out()
        self._stream_gone(stream)

    def _stream_gone(self, stream: H2ServerStream) -> None:
        """The stream is cut (reset by either side, or the connection is gone)."""
        if stream.closed:
            return
        stream.closed = True
        stream.wake()
        exchange = stream.exchange
        if stream.task is not None and not stream.task.done() and exchange is not None and not exchange.ended:
            log.info("stream %d from %s reset during %s %s", stream.sid, self.client,
                     exchange.method, exchange.path)
            stream.task.cancel()

    def _stream_done(self, stream: H2ServerStream) -> None:
        self.streams.pop(stream.sid, None)
        if stream.unacked:  # body the handler never asked for: give the window back
            self.acknowledge(stream, stream.unacked)
            stream.unacked = 0
        # A request body still arriving after the response is not reset (RST_STREAM NO_ERROR
        # makes httpx hang): its data is taken and discarded with the window given back; such
        # streams stay bounded by max_concurrent_streams and the idle timeout.
        stream.closed = True
        if not self.streams and not self.closed:
            grace = self.server.handover_grace
            if grace is not None:
                self._goaway_and_linger(grace)
            elif self.goaway_sent or self.server.draining:
                self._close()
            else:
                self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.limits.keepalive_timeout, self._on_idle)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_idle(self) -> None:
        self._timer = None
        if not self.streams and not self.closed:
            self._goaway(ErrorCodes.NO_ERROR)
            self._close()

    def _calm(self, why: str) -> None:
        log.warning("HTTP/2 client %s: %s; GOAWAY ENHANCE_YOUR_CALM", self.client, why)
        self._goaway(ErrorCodes.ENHANCE_YOUR_CALM)
        for stream in list(self.streams.values()):
            self._stream_gone(stream)
        self._close()
        self.closed = True

    def _goaway(self, code: ErrorCodes) -> None:
        """Send GOAWAY without closing h2's state machine, so in-flight streams may finish."""
        if self.goaway_sent or self.closed:
            return
        self.goaway_sent = True
        self.write_out()
        frame = GoAwayFrame(0, last_stream_id=self.conn.highest_inbound_stream_id, error_code=code)
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(frame.serialize())

    def _close(self) -> None:
        self._disarm()
        self._stop_header_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.write_out()
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY now; close once the in-flight streams have finished."""
        self._goaway(ErrorCodes.NO_ERROR)
        if not self.streams:
            self._close()

    def retire(self, grace: float) -> None:
        """Graceful stop after an upgrade, without failing a stream on any client.

        Some clients (httpx) fail the streams they still wait on when GOAWAY arrives, even with
        NO_ERROR, so GOAWAY waits until the connection is idle (new streams are still served
        meanwhile), or ``grace`` seconds for one that never is.
        """
        if not self.streams:
            self._goaway_and_linger(grace)
        else:
            self._disarm()
            self._timer = self.loop.call_later(grace, self._goaway_and_linger, grace)

    def _goaway_and_linger(self, grace: float) -> None:
        """GOAWAY; once idle, close after ``grace`` seconds. Streams the client opened before it
        saw the GOAWAY are refused meanwhile (RFC 9113 section 6.8: safe for it to retry
        elsewhere) instead of meeting a closed socket, which could also lose the GOAWAY."""
        self._disarm()  # a retire timer still pending when the last stream ended
        self._goaway(ErrorCodes.NO_ERROR)
        if not self.streams and not self.closed:
            self._timer = self.loop.call_later(grace, self._close)

    def abort(self) -> None:
        """Drain time is over: cut the connection and cancel every handler."""
        for stream in list(self.streams.values()):
            self._stream_gone(stream)
        if self.transport is not None:
            self.transport.abort()
