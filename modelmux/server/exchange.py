"""The protocol-neutral request/response pair handed to the application.

The application sees an ``Exchange``: method, path, headers, a bounded body reader and a
response writer that waits for the client when it reads slowly. It never learns which HTTP
version carries it; each protocol implements the small ``Stream`` interface below. It keeps
three ``perf_counter_ns`` stamps and tells an optional observer once it is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from modelmux.errors import Headers, InternalError, ModelMuxError, PayloadTooLarge, RequestTimeout
from modelmux.upstream.deadline import WaitTimer


log = logging.getLogger("modelmux.server")


class Stream(Protocol):
    """What a protocol connection provides to one exchange."""

    def send_head(self, status: int, headers: Headers, *, end: bool, body: bytes = b"") -> None: ...
    def send_data(self, data: bytes) -> None: ...
    def send_end(self) -> None: ...
    async def drain(self) -> None: ...
    @property
    def write_blocked(self) -> bool: ...
    def send_continue(self) -> None: ...
    def resume_body(self) -> None: ...
    def open_connections(self) -> int: ...


class ExchangeObserver(Protocol):
    """Told once when an exchange is over: answered, failed, or cut by either side."""

    def exchange_done(self, exchange: Exchange) -> None: ...


class ClientDisconnected(Exception):
    """The client went away while the response was being written."""


class Exchange:
    """One request and its response."""

    __slots__ = (
        "method", "path", "query", "headers", "http_version", "client", "extra_headers", "body",
        "started", "ended", "status", "bytes_sent", "observer", "started_ns", "received_ns",
        "head_ns", "_stream", "_max_body", "_body", "_body_len", "_body_complete",
        "_body_too_large", "_body_waiter", "_body_timeout", "_body_timer", "_index",
    )

    def __init__(
        self,
        stream: Stream,
        method: str,
        target: str,
        headers: Headers,
        *,
        http_version: str,
        client: str,
        max_body: int,
        body_timeout: float,
        declared_length: int | None,
    ) -> None:
        self.method = method
        self.path, _, self.query = target.partition("?")
        self.headers = headers
        self.http_version = http_version
        self.client = client
        self.extra_headers: Headers = []
        self.started = False
        self.ended = False
        self.status = 0
        self.bytes_sent = 0
        self.observer: ExchangeObserver | None = None
        self.started_ns = self.received_ns = time.perf_counter_ns()  # request head parsed
        self.head_ns = 0  # response head sent
        self._stream = stream
        self._max_body = max_body
        self._body = bytearray()
        self.body: bytes | None = None
        """The whole request body once it is in within the limit (``read_body`` waits for it)."""
        self._body_len = 0
        self._body_complete = False
        self._body_too_large = declared_length is not None and declared_length > max_body
        self._body_waiter: asyncio.Future[None] | None = None
        self._body_timeout = body_timeout
        self._body_timer: WaitTimer | None = None  # while read_body waits: the gap timer
        self._index: dict[bytes, bytes] | None = None  # header name -> first value, on first use

    def header(self, name: bytes) -> bytes | None:
        """The first value of a request header (``name`` in lower case), or None.

        The first lookup indexes the headers (in C: cheaper than a second scan in Python).
        """
        index = self._index
        if index is None:
            index = self._index = dict(reversed(self.headers))  # the first value wins
        return index.get(name)

    @property
    def bytes_received(self) -> int:
        """Request body bytes received so far (for the access log)."""
        return self._body_len

    @property
    def body_too_large(self) -> bool:
        return self._body_too_large

    @property
    def body_complete(self) -> bool:
        return self._body_complete

    def feed_body(self, data: bytes) -> bool:
        """Protocol side: append body bytes. Returns False once the body is over the limit.

        Each non-empty piece moves the reader's ``body_timeout`` deadline on without waking it.
        """
        self._body_len += len(data)
        timer = self._body_timer
        if timer is not None and data:
            timer.start(asyncio.get_running_loop().time() + self._body_timeout)
        if self._body_too_large or self._body_len > self._max_body:
            self._body_too_large = True
            self._body.clear()
            self._wake()
            return False
        self._body += data
        return True

    def finish_body(self) -> None:
        """Protocol side: the request body is complete."""
        self.received_ns = time.perf_counter_ns()
        self._body_complete = True
        if not self._body_too_large:
            self.body = bytes(self._body)
            self._body.clear()
        self._wake()

    def _body_stalled(self) -> None:
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(RequestTimeout("timed out waiting for the request body"))

    def _wake(self) -> None:
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read_body(self) -> bytes:
        """The whole request body, bounded by ``max_body_bytes``.

        Raises:
            PayloadTooLarge: the body is (or is declared) larger than the limit; the rest is not read.
            RequestTimeout: the client stopped sending the body for ``body_timeout`` seconds.
        """
        if self._body_too_large:
            raise PayloadTooLarge(f"request body is larger than the limit of {self._max_body} bytes")
        if not self._body_complete:
            self._stream.send_continue()
            self._stream.resume_body()
            loop = asyncio.get_running_loop()
            timer = self._body_timer = WaitTimer(self._body_stalled)
            timer.start(loop.time() + self._body_timeout)
            try:
                while not self._body_complete and not self._body_too_large:
                    self._body_waiter = loop.create_future()
                    await self._body_waiter
            finally:
                self._body_waiter = self._body_timer = None
                timer.stop()
        if self._body_too_large or self.body is None:
            raise PayloadTooLarge(f"request body is larger than the limit of {self._max_body} bytes")
        return self.body

    async def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        """Send a complete response with a Content-Length body."""
        self.reply(status, headers, body)
        await self._stream.drain()

    def reply(self, status: int, headers: Headers, body: bytes = b"") -> None:
        """``respond`` without waiting for the client to take it (for a read callback)."""
        self._begin(status)
        all_headers = headers + self.extra_headers
        all_headers.append((b"content-length", str(len(body)).encode()))
        if self.method == "HEAD":
            body = b""
        self._stream.send_head(status, all_headers, end=True, body=body)
        self.bytes_sent += len(body)
        self.ended = True

    async def start(self, status: int, headers: Headers) -> None:
        """Send the response head of a streamed response (chunked on HTTP/1.1)."""
        self._begin(status)
        self._stream.send_head(status, headers + self.extra_headers, end=False)

    async def write(self, data: bytes) -> None:
        """Send part of a streamed body; waits while the client is not reading.

        Raises:
            ClientDisconnected: the connection is gone.
        """
        if data and self.method != "HEAD":
            self._stream.send_data(data)
            self.bytes_sent += len(data)
        await self._stream.drain()

    def sink(self) -> Sink | None:
        """A writer for the streamed body that needs no task (``Sink``); None for HEAD."""
        return None if self.method == "HEAD" else Sink(self)

    async def end(self) -> None:
        """Finish a streamed response."""
        if not self.ended:
            self.ended = True
            self._stream.send_end()
            await self._stream.drain()

    def open_connections(self) -> int:
        """How many client connections the server carrying this exchange holds open."""
        return self._stream.open_connections()

    def done(self) -> None:
        """Protocol side: the exchange is over; tells the observer, once (its failure is logged)."""
        observer, self.observer = self.observer, None
        if observer is not None:
            try:
                observer.exchange_done(self)
            except Exception:
                log.exception("exchange observer failed for %s %s", self.method, self.path)

    def _begin(self, status: int) -> None:
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        self.head_ns = time.perf_counter_ns()


class Sink:
    """``Exchange.write`` for a read callback: writes now, and says when to stop and wait.

    An upstream stream spliced to the client (``pipeline.stream.RelayedStream``) writes each
    piece from the upstream connection's read callback; ``push`` returns False once the client
    is not keeping up (the caller then ``await``s ``drain``) or is gone (``error`` is set).
    """

    __slots__ = ("_exchange", "_stream", "error")

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._stream = exchange._stream
        self.error: ClientDisconnected | None = None

    def push(self, data: bytes) -> bool:
        """Write ``data``; False when the caller must stop: the client is slow, or gone."""
        if self.error is not None:
            return False
        try:
            self._stream.send_data(data)
        except ClientDisconnected as exc:
            self.error = exc
            return False
        self._exchange.bytes_sent += len(data)
        return not self._stream.write_blocked

    async def drain(self) -> None:
        """Wait until the client has taken what was written.

        Raises:
            ClientDisconnected: the connection is gone.
        """
        if self.error is not None:
            raise self.error
        await self._stream.drain()


Handler = Callable[[Exchange], Awaitable[None]]


_JSON = (b"content-type", b"application/json")
_log = logging.getLogger("modelmux.server")


async def serve_exchange(handler: Handler, exchange: Exchange, *, client: str,
                         gone: Callable[[], bool], cut: Callable[[], None]) -> None:
    """Run ``handler`` for ``exchange`` so that no exception escapes to the connection.

    A ``ModelMuxError`` becomes its OpenAI error response, anything else a logged 500, if nothing
    was sent yet; after the head, ``cut()`` ends the stream abruptly so the client sees a broken
    response rather than a clean end. Cancellation is swallowed once the client is ``gone()``.

    Raises:
        asyncio.CancelledError: cancelled while the client is still there (shutdown, reset).
    """
    try:
        await handler(exchange)
        if not exchange.started:
            raise RuntimeError("handler returned without sending a response")
        await exchange.end()
    except asyncio.CancelledError:
        if not gone():
            raise
    except ClientDisconnected:
        pass
    except ModelMuxError as exc:
        level = logging.INFO if exc.status < 500 else logging.WARNING
        _log.log(level, "%s %s -> %d %s: %s", exchange.method, exchange.path, exc.status,
                 exc.code, exc.message)
        await _send_error(exchange, exc, gone, cut)
    except Exception:
        _log.exception("unhandled error while serving %s %s for %s",
                       exchange.method, exchange.path, client)
        await _send_error(exchange, InternalError("internal server error"), gone, cut)


async def _send_error(exchange: Exchange, exc: ModelMuxError, gone: Callable[[], bool],
                      cut: Callable[[], None]) -> None:
    if exchange.started or gone():
        cut()
        return
    try:
        await exchange.respond(exc.status, [_JSON, *exc.headers], exc.body())
    except ClientDisconnected:
        pass
