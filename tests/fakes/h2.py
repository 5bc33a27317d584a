"""A fake provider over HTTP/2: any ``FakeServer``'s ``handle`` served with the ``h2`` library.

h2c with prior knowledge on 127.0.0.1, or TLS where ALPN picks h2 or (``alpn`` permitting)
HTTP/1.1, which the wrapped FakeServer then serves itself. Records connections, the most
streams open at once, resets and PINGs received; ``gate`` holds replies, ``frozen`` stops
reading (PINGs go unanswered), ``goaway`` starts a drain.
Replies honour ``Reply.events`` (one DATA frame each), ``reset_after`` (RST_STREAM) and
``hold_after``/``stall`` (hold until the client resets the stream or leaves). ``early`` answers
as soon as a request's head arrives, granting no window for its body ("end"; "reset" then also
sends RST_STREAM(NO_ERROR), RFC 9113 section 8.1; "head" sends only the response head, then
RST_STREAM(NO_ERROR)); ``lower_max_streams`` changes SETTINGS.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from tests.fakes.http import FakeServer, Reply, Request
from tests.server.h2_helpers import make_certs


@dataclass
class _Stream:
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)
    reset: asyncio.Event = field(default_factory=asyncio.Event)


class _Conn:
    """One server-side HTTP/2 connection of the fake."""

    def __init__(self, fake: H2Fake, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.fake, self.reader, self.writer = fake, reader, writer
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: fake.max_streams})
        self.streams: dict[int, _Stream] = {}
        self.window = asyncio.Event()
        self.last_stream: int | None = None  # set by GOAWAY: later streams are ignored
        self.tasks: set[asyncio.Task[None]] = set()
        self.requests = 0
        self.early: set[int] = set()  # streams answered before their body arrived

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.transport.is_closing():
            self.writer.write(data)

    def goaway(self, refuse_open: bool) -> None:
        """GOAWAY written by hand: h2's ``close_connection`` would end the open streams too."""
        last = self.h2.highest_inbound_stream_id or 0
        if refuse_open:
            last = min(self.streams, default=last)
        self.last_stream = last
        self.flush()
        self.writer.write(GoAwayFrame(0, last_stream_id=last).serialize())

    async def serve(self) -> None:
        self.h2.initiate_connection()
        self.flush()
        while True:
            if self.fake.frozen is not None:
                await self.fake.frozen.wait()
            data = await self.reader.read(65536)
            if not data:
                return
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.flush()
                return
            for event in events:
                self.on_event(event)
            self.flush()
            if self.last_stream is not None and not self.streams:
                return  # drained after GOAWAY

    def on_event(self, event: h2.events.Event) -> None:
        fake = self.fake
        if isinstance(event, h2.events.RequestReceived):
            headers = {k.decode(): v.decode("latin-1") for k, v in event.headers or ()}
            self.streams[event.stream_id] = _Stream(headers)
            fake.peak_streams = max(fake.peak_streams, len(self.streams))
            if fake.early is not None and not event.stream_ended:
                self.early.add(event.stream_id)
                self.spawn(self.respond(event.stream_id))
        elif isinstance(event, h2.events.DataReceived) and event.stream_id in self.early:
            pass  # answered already; no window update, so the client's stays shut
        elif isinstance(event, h2.events.DataReceived) and event.stream_id in self.streams:
            self.streams[event.stream_id].body += event.data or b""
            self.h2.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id in self.early:
            pass
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id in self.streams:
            if self.last_stream is None or event.stream_id <= self.last_stream:
                self.spawn(self.respond(event.stream_id))
        elif isinstance(event, h2.events.StreamReset):
            fake.resets += 1
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.reset.set()
            fake.notify()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.window.set()
        elif isinstance(event, h2.events.PingReceived):
            fake.pings += 1
            fake.notify()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def respond(self, sid: int) -> None:
        stream = self.streams[sid]
        head = stream.headers
        request = Request(head.get(":method", ""), head.get(":path", ""),
                          {k: v for k, v in head.items() if not k.startswith(":")},
                          bytes(stream.body))
        self.requests += 1
        self.fake.authorities.append(head.get(":authority", ""))
        self.fake.app.requests.append(request)
        self.fake.notify()
        if self.fake.gate is not None:
            await self.fake.gate.wait()
        if self.last_stream is not None and sid > self.last_stream:
            self.streams.pop(sid, None)  # refused by our GOAWAY: never answered
            self.fake.notify()
            return
        reply = await self.fake.app.handle(request)
        if reply.stall:
            await stream.reset.wait()
            return
        try:
            if sid in self.early and self.fake.early == "head":
                self.h2.send_headers(sid, [(b":status", str(reply.status).encode())])
            else:
                await self.send(sid, reply, stream)
            if sid in self.early and self.fake.early != "end":
                self.h2.reset_stream(sid, ErrorCodes.NO_ERROR)
        except (h2.exceptions.StreamClosedError, KeyError):
            pass  # the client reset the stream meanwhile
        self.streams.pop(sid, None)
        self.flush()
        self.fake.notify()
        if self.last_stream is not None and not self.streams:
            self.writer.transport.close()

    async def send(self, sid: int, reply: Reply, stream: _Stream) -> None:
        headers = [(b":status", str(reply.status).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers]
        if reply.events is None:
            headers.append((b"content-length", str(len(reply.body)).encode()))
            self.h2.send_headers(sid, headers, end_stream=not reply.body)
            self.flush()
            if reply.body:
                await self.send_data(sid, reply.body, end=True)
            return
        self.h2.send_headers(sid, headers)
        self.flush()
        cut = reply.reset_after if reply.reset_after is not None else reply.hold_after
        for index, event in enumerate(reply.events):
            if cut is not None and index == cut:
                break
            await self.send_data(sid, event, end=False)
        else:
            self.h2.end_stream(sid)
            return
        if reply.reset_after is not None:
            self.h2.reset_stream(sid, ErrorCodes.INTERNAL_ERROR)
            return
        await stream.reset.wait()

    async def send_data(self, sid: int, data: bytes, *, end: bool) -> None:
        while data:
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size,
                       len(data))
            if room <= 0:
                self.window.clear()
                await self.window.wait()
                continue
            self.h2.send_data(sid, data[:room])
            self.flush()
            data = data[room:]
            await self.writer.drain()
        if end:
            self.h2.end_stream(sid)


class H2Fake:
    """Serve ``app`` (a FakeOpenAI, FakeClaude...) over HTTP/2 on 127.0.0.1 until closed.

    ``tls`` is a directory for a throwaway CA and certificate (then ``client_context`` builds a
    client context trusting it); ``alpn`` is what the server accepts, in its preference order.
    """

    def __init__(self, app: FakeServer, *, max_streams: int = 100, tls: Path | None = None,
                 alpn: Sequence[str] = ("h2", "http/1.1")) -> None:
        self.app = app
        self.max_streams = max_streams
        self.gate: asyncio.Event | None = None
        self.early: Literal["end", "reset", "head"] | None = None
        self.frozen: asyncio.Event | None = None  # while set to an unset Event, read nothing
        self.connections = 0  # HTTP/2 connections
        self.h1_connections = 0  # TLS connections where ALPN chose HTTP/1.1 (or nothing)
        self.peak_streams = 0
        self.resets = 0
        self.pings = 0
        self.authorities: list[str] = []  # :authority of each request answered
        self.port = 0
        self._alpn = list(alpn)
        self._tls_dir = tls
        self._cafile: Path | None = None
        self._conns: list[_Conn] = []
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self._tls_dir is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def client_context(self) -> ssl.SSLContext:
        """A new verifying client context trusting the fake's CA (a pool's context factory)."""
        assert self._cafile is not None
        return ssl.create_default_context(cafile=str(self._cafile))

    def notify(self) -> None:
        self.app._notify()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        await self.app.wait_for(predicate, timeout)

    def goaway(self, *, refuse_open: bool = False) -> None:
        """GOAWAY on every connection: open streams finish (or, ``refuse_open``, all but the
        lowest are refused), then the connection closes."""
        for conn in self._conns:
            if conn.last_stream is None:
                conn.goaway(refuse_open)

    def lower_max_streams(self, limit: int) -> None:
        """Send new SETTINGS_MAX_CONCURRENT_STREAMS on every connection."""
        for conn in self._conns:
            conn.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: limit})
            conn.flush()

    async def __aenter__(self) -> Self:
        context = None
        if self._tls_dir is not None:
            cert, key, client = make_certs(self._tls_dir)
            self._cafile = self._tls_dir / "ca.pem"
            ca = client.get_ca_certs(binary_form=True)
            self._cafile.write_text("".join(ssl.DER_cert_to_PEM_cert(c) for c in ca))
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            context.set_alpn_protocols(self._alpn)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        for event in (self.gate, self.frozen):
            if event is not None:
                event.set()
        await self.app.stop(self._server)  # our connections are in the app's sets too

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.app._tasks.add(task)
        ssl_object = writer.get_extra_info("ssl_object")
        try:
            if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
                self.h1_connections += 1
                await self.app._serve(reader, writer)  # HTTP/1.1 by the wrapped fake itself
                return
            self.app._writers.add(writer)
            conn = _Conn(self, reader, writer)
            self._conns.append(conn)
            self.connections += 1
            self.notify()
            try:
                await conn.serve()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                for t in list(conn.tasks):
                    t.cancel()
                writer.transport.abort()
                self.app._writers.discard(writer)
                self._conns.remove(conn)
                self.notify()
        finally:
            self.app._tasks.discard(task)
