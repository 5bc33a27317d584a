"""One HTTP/2 client connection as the pool sees it: open it, send requests on it.

Multiplexes concurrent requests (streams) up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS and
honours the send window for request bodies. The pool sees it through ``is_available``/
``has_expired``/``is_idle``/``is_closed`` plus ``claim``/``unclaim`` of one stream slot, and
learns of changes through ``notify``. The receive side (events, flow-control credit, GOAWAY
drain, PING keep-alives) is ``h2link.H2Link``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

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
from modelmux.upstream.h2link import H2Link
from modelmux.upstream.h2stream import H2ClientStream, StreamRefused

__all__ = ["H2ClientStream", "HTTP2Connection", "StreamRefused"]


class HTTP2Connection(H2Link):
    """One HTTP/2 connection to one origin carrying many concurrent requests.

    ``connect`` once (prior-knowledge h2c for http, ALPN "h2" for https), then call
    ``handle_request`` concurrently; each returns an ``H2ClientStream`` to read and close.
    """

    # -- the predicates a pool uses -------------------------------------------------------
    @property
    def limit(self) -> int:
        peer = self._h2.remote_settings.max_concurrent_streams
        return peer if self._max_streams is None else min(peer, self._max_streams)

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
