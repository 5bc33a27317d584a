"""The pieces of one HTTP/2 connection below the protocol class: settings, streams, budgets.

``H2ServerStream`` is the ``Stream`` an ``Exchange`` writes through; ``ServerH2Connection``
(made by ``server_connection`` from ``H2Settings``) refuses streams over the limit with
REFUSED_STREAM instead of failing the connection; ``HeaderBlockBuffer`` bounds one header
block (HEADERS + CONTINUATION); ``request_head`` reads a request's pseudo-headers. No I/O
happens here.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

import h2.config
import h2.connection
import h2.exceptions
import h2.frame_buffer
import h2.settings
import msgspec
from h2.errors import ErrorCodes
from h2.stream import StreamClosedBy
from hyperframe.frame import Frame, RstStreamFrame

from modelmux.codec.h2fields import h2_fields
from modelmux.config.settings import H2Settings
from modelmux.errors import Headers
from modelmux.server.exchange import ClientDisconnected, Exchange
from modelmux.server.host import http_date

if TYPE_CHECKING:
    from modelmux.server.host import Host

class H2cUpgrade(msgspec.Struct, frozen=True):
    """An HTTP/1.1 request that asked for ``Upgrade: h2c``: it becomes HTTP/2 stream 1."""

    settings: bytes
    method: str
    target: str
    headers: Headers


class ServerH2Connection(h2.connection.H2Connection):
    """``H2Connection`` that refuses a stream over the limit instead of failing the connection."""

    def _receive_headers_frame(self, frame: Any) -> Any:
        try:
            return super()._receive_headers_frame(frame)
        except h2.exceptions.TooManyStreamsError:
            h2.connection._decode_headers(self.decoder, frame.data)  # keep HPACK state in step
            sid = frame.stream_id
            self.highest_inbound_stream_id = max(self.highest_inbound_stream_id, sid)
            self._closed_streams[sid] = StreamClosedBy.SEND_RST_STREAM
            return [RstStreamFrame(sid, error_code=ErrorCodes.REFUSED_STREAM)], []


def server_connection(settings: H2Settings) -> ServerH2Connection:
    """A server-side state machine advertising ``settings``, its header blocks bounded."""
    codes = h2.settings.SettingCodes
    conn = ServerH2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    conn.local_settings = h2.settings.Settings(client=False, initial_values={
        codes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
        codes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
        codes.MAX_FRAME_SIZE: settings.max_frame_size,
        codes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
    })
    conn.max_inbound_frame_size = settings.max_frame_size
    conn.decoder.max_header_list_size = settings.max_header_list_size
    conn.incoming_buffer = HeaderBlockBuffer(max_frames=settings.max_continuation_frames,
                                             max_bytes=settings.max_header_list_size)
    return conn


def request_head(fields: Any) -> tuple[str, str, Headers, int | None]:
    """Method, target, regular headers (``:authority`` as ``host`` when there is none) and the
    declared ``content-length`` of a request's header fields."""
    method = path = b""
    authority: bytes | None = None
    headers: Headers = []
    declared: int | None = None
    for name, value in fields:
        name, value = bytes(name), bytes(value)
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            continue
        if name == b"content-length" and value.isdigit():
            declared = int(value)
        headers.append((name, value))
    if authority is not None and not any(n == b"host" for n, _ in headers):
        headers.append((b"host", authority))
    return method.decode("ascii"), path.decode("latin-1"), headers, declared


class HeaderBlockBuffer(h2.frame_buffer.FrameBuffer):
    """h2's frame buffer with a bound on one header block: CONTINUATION frames and its bytes.

    A block over ``max_frames`` CONTINUATION frames or ``max_bytes`` encoded bytes fails the
    connection with ENHANCE_YOUR_CALM before it is decoded (RFC 9113 section 10.5).
    """

    def __init__(self, *, max_frames: int, max_bytes: int) -> None:
        super().__init__(server=True)
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._block_bytes = 0

    @property
    def block_open(self) -> bool:
        """A HEADERS frame arrived whose block has not ended yet."""
        return bool(self._headers_buffer)

    def _update_header_buffer(self, f: Frame | None) -> Frame | None:
        out = super()._update_header_buffer(f)
        if not self._headers_buffer:
            self._block_bytes = 0
            return out
        self._block_bytes += len(getattr(f, "data", b""))
        if len(self._headers_buffer) - 1 > self._max_frames:
            raise h2.exceptions.DenialOfServiceError("too many CONTINUATION frames")
        if self._block_bytes > self._max_bytes:
            raise h2.exceptions.DenialOfServiceError("header block too large")
        return out


class FrameBudget:
    """A count of events per one-second window."""

    __slots__ = ("_count", "_limit", "_start")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._start = time.monotonic()
        self._count = 0

    def spend(self) -> bool:
        """Count one event; False once the window's budget is exhausted."""
        now = time.monotonic()
        if now - self._start >= 1.0:
            self._start, self._count = now, 0
        self._count += 1
        return self._count <= self._limit


class StreamOwner(Protocol):
    """What a stream asks of its connection (``h2.H2Protocol``)."""

    conn: ServerH2Connection
    loop: asyncio.AbstractEventLoop
    server: Host
    closed: bool
    write_paused: bool

    def flush_stream(self, stream: H2ServerStream) -> None: ...
    def write_out(self) -> None: ...
    def acknowledge(self, stream: H2ServerStream, size: int) -> None: ...


class H2ServerStream:
    """One HTTP/2 stream: the ``Stream`` interface an ``Exchange`` writes through."""

    __slots__ = ("body_wanted", "closed", "end_pending", "exchange", "pending", "proto",
                 "remote_ended", "sid", "task", "unacked", "waiters")

    def __init__(self, proto: StreamOwner, sid: int) -> None:
        self.proto = proto
        self.sid = sid
        self.exchange: Exchange | None = None
        self.task: asyncio.Task[None] | None = None
        self.pending = bytearray()
        self.end_pending = False
        self.closed = False
        self.remote_ended = False
        self.body_wanted = False
        self.unacked = 0
        self.waiters: list[asyncio.Future[None]] = []

    def send_head(self, status: int, headers: Headers, *, end: bool, body: bytes = b"") -> None:
        if self.closed:
            raise ClientDisconnected()
        out = [(b":status", str(status).encode()), (b"server", b"modelmux"), (b"date", http_date.get())]
        out += h2_fields(headers, request=False)
        self.proto.conn.send_headers(self.sid, out, end_stream=end and not body)
        if end and body:
            self.pending += body
            self.end_pending = True
            self.proto.flush_stream(self)
        self.proto.write_out()

    def send_data(self, data: bytes) -> None:
        if self.closed:
            raise ClientDisconnected()
        self.pending += data
        self.proto.flush_stream(self)
        self.proto.write_out()

    def send_end(self) -> None:
        if self.closed:
            raise ClientDisconnected()
        self.end_pending = True
        self.proto.flush_stream(self)
        self.proto.write_out()

    @property
    def write_blocked(self) -> bool:
        return self.closed or bool(self.pending) or self.end_pending or self.proto.write_paused

    async def drain(self) -> None:
        while self.write_blocked and not self.closed:
            waiter = self.proto.loop.create_future()
            self.waiters.append(waiter)
            await waiter
        if self.closed and (self.pending or self.end_pending or not self._finished()):
            raise ClientDisconnected()

    def _finished(self) -> bool:
        return self.exchange is not None and self.exchange.ended and not self.proto.closed

    def send_continue(self) -> None:
        pass  # HTTP/2 clients do not wait for 100-continue here: the window is the signal

    def resume_body(self) -> None:
        self.body_wanted = True
        if self.unacked:
            self.proto.acknowledge(self, self.unacked)
            self.unacked = 0

    def open_connections(self) -> int:
        return len(self.proto.server.connections)

    def wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()
