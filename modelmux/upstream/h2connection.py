"""One HTTP/2 client connection: an asyncio.Protocol driving an ``h2`` state machine.

Multiplexes concurrent requests (streams) up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS,
acknowledges body bytes as the consumer reads them (a slow reader closes its window), honours
the send window for request bodies, drains in-flight streams after GOAWAY and sends PING
keep-alives. The pool sees it through ``is_available``/``has_expired``/``is_idle``/``is_closed``
plus ``claim``/``unclaim`` of one stream slot, and learns of changes through ``notify``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings

from modelmux.codec.h2fields import h2_fields
from modelmux.config.settings import Timeouts
from modelmux.errors import Headers
from modelmux.upstream.dial import Handover
from modelmux.upstream.errors import (
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTLSError,
    map_errors,
)
from modelmux.upstream.h2stream import H2ClientStream, StreamRefused
from modelmux.upstream.origin import Origin

__all__ = ["H2ClientStream", "HTTP2Connection", "StreamRefused"]

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


class HTTP2Connection(asyncio.Protocol):
    """One HTTP/2 connection to one origin carrying many concurrent requests.

    ``connect`` once (prior-knowledge h2c for http, ALPN "h2" for https), then call
    ``handle_request`` concurrently; each returns an ``H2ClientStream`` to read and close.
    """

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

    # -- the predicates a pool uses -------------------------------------------------------
    @property
    def limit(self) -> int:
        peer = self._h2.remote_settings.max_concurrent_streams
        return peer if self._max_streams is None else min(peer, self._max_streams)
    @property
    def active_streams(self) -> int:
        return len(self._streams) + self._reserved
    def is_available(self) -> bool:
        """Connected, not going away, and below the concurrent-stream limit."""
        return (self._transport is not None and not self._closed and not self._goaway
                and self.active_streams < self.limit
                and (self._h2.highest_outbound_stream_id or 0) < 2**31 - 201)

    def is_idle(self) -> bool:
        return not self._closed and self.active_streams == 0
    def is_closed(self) -> bool:
        return self._closed
    def has_expired(self, now: float) -> bool:
        """Closed, drained after GOAWAY, or idle past its keep-alive expiry."""
        if self._closed:
            return True
        if self.active_streams:
            return False
        return self._goaway or (self._expires_at is not None and now >= self._expires_at)

    @property
    def expires_at(self) -> float | None:
        """Loop time at which this idle connection expires; None while streams are open."""
        return None if self.active_streams or self._closed else self._expires_at

    def wait_closed(self) -> asyncio.Future[None] | None:
        """A future done once the transport is gone; None if it never connected or is gone."""
        fut = self._closed_fut
        return None if fut is None or fut.done() else fut

    @property
    def buffered_bytes(self) -> int:
        """Response bytes received and not yet read by consumers, over all streams."""
        return sum(s.buffered for s in self._streams.values())
    def claim(self) -> None:
        """Reserve one stream slot synchronously; the next ``handle_request`` uses it."""
        if not self.is_available():
            raise RuntimeError("connection has no free stream")
        self._reserved += 1
        self._expires_at = None

    def unclaim(self) -> None:
        """Give back a reservation that will not be used."""
        if self._reserved:
            self._reserved -= 1
            self._on_stream_gone()

    def abort(self) -> None:
        """Close now: every open stream fails with UpstreamClosed."""
        self.abort_with(UpstreamClosed(f"{self.label}: connection closed locally"))
    async def aclose(self) -> None:
        """Say GOAWAY and close the socket (open streams fail)."""
        if self._transport is not None and not self._closed and not self._transport.is_closing():
            self._h2.close_connection()
            self._flush()
            self._transport.close()
        self._shut(UpstreamClosed(f"{self.label}: connection closed locally"))

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

    # -- requests ----------------------------------------------------------------------------
    async def connect(self, timeout: float | None, handover: Handover | None = None) -> None:
        """Open the socket, send the preface; wait for the peer's SETTINGS and its ACK of ours.

        ``handover`` is a TLS connection already opened (and ALPN-negotiated to h2) by
        ``dial.open_tls``: it is adopted instead of opening a new socket.
        """
        loop = asyncio.get_running_loop()
        context = self._ssl_context if self.origin.scheme == "https" else None
        self._settings_seen = loop.create_future()
        with map_errors("connect", self.label):
            async with asyncio.timeout(timeout):
                if handover is not None:
                    assert handover.transport is not None
                    transport = handover.transport
                    handover.hand_to(self)
                else:
                    kwargs: dict[str, Any] = {}
                    if context is not None:
                        kwargs = {"ssl": context, "server_hostname": self.origin.host}
                    transport, _ = await loop.create_connection(
                        lambda: self, self.origin.host, self.origin.port, **kwargs)
                    self.connection_made(transport)
                ssl_object = transport.get_extra_info("ssl_object")
                if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
                    transport.abort()
                    raise UpstreamTLSError(f"{self.label}: ALPN did not choose h2")
                if self._closed:
                    raise UpstreamClosed(f"{self.label}: connection closed while it was opened")
                self._h2.local_settings = Settings(client=True, initial_values={
                    SettingCodes.INITIAL_WINDOW_SIZE: self._stream_window,
                    SettingCodes.ENABLE_PUSH: 0})
                self._h2.initiate_connection()
                grow = self._connection_window - self._h2.inbound_flow_control_window
                if grow > 0:
                    self._h2.increment_flow_control_window(grow)
                self._flush()
                early, self._early = self._early or [], None
                for data in early:
                    self.data_received(data)
                try:
                    await self._settings_seen
                except (UpstreamClosed, UpstreamProtocolError) as exc:
                    hint = "prior knowledge" if context is None else "ALPN h2"
                    raise UpstreamConnectError(
                        f"{self.label}: no HTTP/2 handshake "
                        f"({exc.message.removeprefix(self.label + ': ')}); does this server "
                        f"speak HTTP/2 with {hint}? (provider key http2)") from exc
        self._touch()
        self._schedule_ping()

    async def handle_request(self, method: bytes, target: bytes, headers: Headers,
                             body: bytes | AsyncIterable[bytes], timeouts: Timeouts) -> H2ClientStream:
        """Open a stream, send the request (body within the send window), await the head.

        Raises:
            StreamRefused: no free stream, or the peer refused this one (retry elsewhere).
            UpstreamTimeout, UpstreamClosed, UpstreamProtocolError.
        """
        if self._reserved:
            self._reserved -= 1
        elif not self.is_available():
            raise StreamRefused(f"{self.label}: no stream available on this connection")
        if self._closed or self._goaway:
            raise StreamRefused(f"{self.label}: connection is going away")
        sid = self._h2.get_next_available_stream_id()
        stream = H2ClientStream(self, sid)
        stream.read_timeout = timeouts.read
        self._streams[sid] = stream
        self._expires_at = None
        fields = [(b":method", method), (b":scheme", self.origin.scheme.encode()),
                  (b":authority", self.origin.authority_bytes), (b":path", target)]
        fields += h2_fields(headers, request=True)
        try:
            with map_errors("first_byte", self.label):
                async with asyncio.timeout(timeouts.first_byte):
                    if isinstance(body, bytes) and body and self._fits(sid, len(body)):
                        self._h2.send_headers(sid, fields)  # head and body in one write
                        self._h2.send_data(sid, body, end_stream=True)
                        self._flush()
                    else:
                        self._h2.send_headers(sid, fields, end_stream=not body)
                        self._flush()
                        if body:
                            chunks = [body] if isinstance(body, bytes) else body
                            stream.sending = True
                            try:
                                await self._send_body(stream, chunks)
                            finally:
                                stream.sending = False
                    await stream.head
        except BaseException:
            self.close_stream(stream, reset=True)
            raise
        return stream

    async def _send_body(self, stream: H2ClientStream, chunks: AsyncIterable[bytes] | list[bytes]
                         ) -> None:
        async def each() -> AsyncIterator[bytes]:  # streams an async body, never collects it
            if isinstance(chunks, list):
                for c in chunks:
                    yield c
            else:
                async for c in chunks:
                    yield c

        async for chunk in each():
            view = memoryview(chunk)
            while view:
                if self._answered(stream):
                    return
                room = min(self._h2.local_flow_control_window(stream.sid),
                           self._h2.max_outbound_frame_size, len(view))
                if room <= 0 or self._writing_paused:
                    self._changed.clear()  # set by window, writability and this stream's events
                    await self._changed.wait()
                    continue
                self._h2.send_data(stream.sid, bytes(view[:room]))
                self._flush()
                view = view[room:]
        if not self._answered(stream):
            self._h2.end_stream(stream.sid)
            self._flush()

    def _fits(self, sid: int, size: int) -> bool:
        """``size`` body bytes can go out at once, in one DATA frame."""
        return (not self._writing_paused and size <= self._h2.max_outbound_frame_size
                and size <= min(self._h2.outbound_flow_control_window,
                                self._h2.remote_settings.initial_window_size))

    def _answered(self, stream: H2ClientStream) -> bool:
        """Has the whole response arrived while the request body is still going out?

        RFC 9113 section 8.1: the client then stops sending (RST_STREAM(CANCEL), unless the
        peer reset the stream already) and uses the response. Raises the stream's error.
        """
        if stream.error is not None:
            raise stream.error
        if not stream.ended:
            return False
        self._reset(stream.sid, ErrorCodes.CANCEL)
        self._flush()
        return True

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

    # -- internals ---------------------------------------------------------------------------
    def _reset(self, sid: int, code: ErrorCodes) -> None:
        """RST_STREAM unless h2 has closed the stream already or never opened it."""
        try:
            self._h2.reset_stream(sid, code)
        except h2.exceptions.ProtocolError:
            pass

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
