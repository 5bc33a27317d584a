"""The receive side of one HTTP/2 client connection: an asyncio.Protocol over an ``h2`` machine.

Owns the transport, the ``h2`` state machine and the open streams: applies the peer's events
to them, hands flow-control credit back as consumers read, sends PING keep-alives and fails
every stream when the connection goes. Opening the connection and sending requests is
``h2connection.HTTP2Connection``, which extends this class.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes

from modelmux.upstream.errors import UpstreamClosed, UpstreamProtocolError
from modelmux.upstream.h2stream import H2ClientStream, StreamRefused
from modelmux.upstream.origin import Origin

__all__ = ["CONNECTION_WINDOW", "STREAM_WINDOW", "H2Link"]

STREAM_WINDOW = 256 * 1024  # per-stream receive window: bounds the unread bytes of one response
CONNECTION_WINDOW = 16 * 1024 * 1024


class _ClientH2(h2.connection.H2Connection):
    """h2 closes its state machine on GOAWAY and then rejects frames of streams still allowed to
    finish; keep it open instead (this class refuses new streams itself)."""

    def _receive_goaway_frame(self, frame: Any) -> Any:
        state = self.state_machine.state
        result = super()._receive_goaway_frame(frame)
        self.state_machine.state = state
        return result


class H2Link(asyncio.Protocol):
    """The connection's state and what the peer sends; the streams see it as their owner."""

    def __init__(
        self,
        origin: Origin,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float | None = None,
        stream_window: int = STREAM_WINDOW,
        connection_window: int = CONNECTION_WINDOW,
        max_streams: int | None = None,
        ping_interval: float | None = None,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.origin = origin
        self.label = str(origin)
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._stream_window = stream_window
        self._connection_window = connection_window
        self._max_streams = max_streams  # our own cap, below the peer's if set
        self._ping_interval = ping_interval
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_unanswered: bytes | None = None
        self.notify = notify  # called (soon, never re-entrantly) when availability may change
        # Outbound fields are built here (lower-case, hop-by-hop dropped): h2 need not check
        # them again on every request; what the peer sends is still validated.
        config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False)
        self._h2 = _ClientH2(config=config)
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, H2ClientStream] = {}
        self._reserved = 0
        self._settings_seen: asyncio.Future[None] | None = None
        self._handshake: set[type] = set()
        self._changed = asyncio.Event()  # window opened / writable / settings
        self._writing_paused = False
        self._goaway = False
        self._closed = False
        self._lost_exc: BaseException | None = None
        self._expires_at: float | None = None
        self._closed_fut: asyncio.Future[None] | None = None
        self._early: list[bytes] | None = []  # bytes received before our preface went out

    @property
    def active_streams(self) -> int:
        return len(self._streams) + self._reserved

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._transport is None:  # uvloop may return from create_connection before this
            self._transport = cast(asyncio.Transport, transport)
            self._closed_fut = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self._early is not None:  # the peer's SETTINGS may beat our preface: hold them
            self._early.append(data)
            return
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._flush()
            self.abort_with(UpstreamProtocolError(f"{self.label}: HTTP/2 protocol error: {exc}"))
            return
        for event in events:
            self._on_event(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost_exc = exc
        how = "reset" if isinstance(exc, ConnectionResetError) else "closed"
        self._shut(UpstreamClosed(f"{self.label}: connection {how} by upstream"))
        if self._closed_fut is not None and not self._closed_fut.done():
            self._closed_fut.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._changed.set()

    # -- what a stream asks of its connection ------------------------------------------------
    def acknowledge(self, sid: int, flow: int) -> None:
        if flow and not self._closed:
            self.credit(sid, flow)
            self._flush()

    def credit(self, sid: int, flow: int) -> None:
        """``acknowledge`` from inside ``data_received``, which flushes once at its end."""
        if flow and not self._closed:
            self._h2.acknowledge_received_data(flow, sid)  # a gone stream: the connection's share

    def close_stream(self, stream: H2ClientStream, *, reset: bool) -> None:
        """Forget a stream; with ``reset`` send RST_STREAM(CANCEL) for it alone."""
        if stream.closed:
            return
        stream.closed = True
        unread = sum(flow for _, flow in stream.chunks)
        stream.chunks.clear()
        stream.buffered = 0
        self._streams.pop(stream.sid, None)
        if not self._closed:
            if reset:
                self._reset(stream.sid, ErrorCodes.CANCEL)
            if unread:
                self._h2.acknowledge_received_data(unread, stream.sid)
            self._flush()
        stream.changed.set()
        self._on_stream_gone()

    # -- the peer's events -------------------------------------------------------------------
    def _on_event(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        stream = self._streams.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and stream is not None:
            for name, value in event.headers or ():
                if name == b":status":
                    stream.status = int(value)
                elif not name.startswith(b":"):
                    stream.headers.append((bytes(name), bytes(value)))
            if not stream.head.done():
                stream.head.set_result(None)
            self._changed.set()  # a request body waiting for window learns of the answer
        elif isinstance(event, h2.events.DataReceived):
            flow = event.flow_controlled_length or 0
            if stream is None:
                self.acknowledge(sid or 0, flow)
            elif event.data:
                data = bytes(event.data)
                if not stream.push(data, flow):  # not spliced: buffered for the next read
                    stream.chunks.append((data, flow))
                    stream.buffered += len(data)
                    stream.changed.set()
            elif flow:
                self.acknowledge(stream.sid, flow)
        elif isinstance(event, h2.events.StreamEnded) and stream is not None:
            stream.ended = True
            stream.changed.set()
            self._changed.set()
        elif isinstance(event, h2.events.StreamReset) and stream is not None:
            self._on_reset(stream, event.error_code)
        elif isinstance(event, (h2.events.RemoteSettingsChanged, h2.events.SettingsAcknowledged)):
            self._handshake.add(type(event))  # ready once the peer sent and acked SETTINGS
            if len(self._handshake) == 2 and self._settings_seen and not self._settings_seen.done():
                self._settings_seen.set_result(None)
            self._changed.set()
            self._notify()  # the stream limit may have grown
        elif isinstance(event, h2.events.WindowUpdated):
            self._changed.set()
        elif isinstance(event, h2.events.PingAckReceived):
            data = bytes(event.ping_data or b"")
            if data == self._ping_unanswered:
                self._ping_unanswered = None
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_goaway(event)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """Streams above the last one the peer will answer are refused (safe to retry); an
        error code fails the rest too; the connection closes once what is left drains."""
        self._goaway = True
        last = event.last_stream_id or 0
        for s in list(self._streams.values()):
            if s.sid > last:
                s.fail(StreamRefused(f"{self.label}: GOAWAY refused stream {s.sid}"))
        if event.error_code != ErrorCodes.NO_ERROR:
            for s in list(self._streams.values()):
                s.fail(UpstreamClosed(f"{self.label}: GOAWAY {event.error_code!r}"))
        self._changed.set()
        self._notify()
        self._on_stream_gone()

    def _on_reset(self, stream: H2ClientStream, code: ErrorCodes | int | None) -> None:
        """RST_STREAM from the peer: NO_ERROR after the head, while the request body is still
        going out, asks us to stop sending and keep the response (RFC 9113 section 8.1);
        after a complete response it changes nothing; anything else fails the stream."""
        if code == ErrorCodes.NO_ERROR and stream.sending and stream.head.done() \
                and not stream.head.exception():
            stream.ended = True  # what arrived is the response
            stream.changed.set()
        else:
            cls = StreamRefused if code == ErrorCodes.REFUSED_STREAM else UpstreamClosed
            stream.fail(cls(f"{self.label}: stream {stream.sid} reset ({code!r})"))
        self._changed.set()

    # -- keep-alive --------------------------------------------------------------------------
    def _schedule_ping(self) -> None:
        if self._ping_interval is not None and not self._closed:
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self._ping_interval, self._keepalive)

    def _keepalive(self) -> None:
        """Every ``ping_interval``: PING; no ACK by the next tick means the peer is gone."""
        self._ping_timer = None
        if self._closed:
            return
        if self._ping_unanswered is not None:
            self.abort_with(UpstreamClosed(f"{self.label}: no answer to a keep-alive PING"))
            return
        self._ping_unanswered = payload = os.urandom(8)
        self._h2.ping(payload)
        self._flush()
        self._schedule_ping()

    # -- internals ---------------------------------------------------------------------------
    def _reset(self, sid: int, code: ErrorCodes) -> None:
        """RST_STREAM unless h2 has closed the stream already or never opened it."""
        try:
            self._h2.reset_stream(sid, code)
        except h2.exceptions.ProtocolError:
            pass

    def _on_stream_gone(self) -> None:
        if self.active_streams:
            return
        if self._goaway and not self._closed and self._transport is not None:
            self._transport.close()  # drained after GOAWAY
        self._touch()

    def _notify(self) -> None:
        if self.notify is not None:
            asyncio.get_running_loop().call_soon(self.notify)

    def _touch(self) -> None:
        if self._keepalive_expiry is not None and not self.active_streams:
            self._expires_at = asyncio.get_running_loop().time() + self._keepalive_expiry

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def abort_with(self, exc: BaseException) -> None:
        """Fail every stream with ``exc`` and drop the socket without a GOAWAY."""
        self._shut(exc)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def _shut(self, exc: BaseException) -> None:
        if not self._closed:
            self._notify()
        self._closed = True
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self._settings_seen is not None and not self._settings_seen.done():
            self._settings_seen.set_exception(exc)
            self._settings_seen.exception()
        for stream in list(self._streams.values()):
            stream.fail(exc)
        self._changed.set()
