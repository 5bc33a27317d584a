"""Per-origin connection pool (limits, FIFO waiters, reuse, idle eviction) and its Response.

``_assign`` is synchronous bookkeeping that hands idle connections, or fresh unconnected ones,
to queued requests in arrival order; the requesting task then does the I/O itself. Connections
are known only by ``is_available``/``has_expired``/``is_idle``/``is_closed`` and come back when
their ``Response`` is read to the end or closed. No HTTP parsing and no retries live here.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from urllib.parse import urlsplit

from modelmux.upstream.connection import HIGH_WATER, LOW_WATER, Headers, HTTP11Connection
from modelmux.upstream.connection import Origin, ResponseHead
from modelmux.upstream.errors import UpstreamClosed, UpstreamConnectError, UpstreamProtocolError
from modelmux.upstream.errors import map_errors
from modelmux.upstream.timeouts import Timeouts
from modelmux.upstream.tls import create_ssl_context

_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_SWEEP_SLACK = 0.005  # fire the idle sweep just after the deadline, never a hair before it
_CLOSE_WAIT = 5.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def parse_url(url: str) -> tuple[Origin, bytes]:
    """Split an absolute http(s) URL into its origin and request target (path?query).

    Raises:
        ValueError: not an absolute http or https URL, or a bad port.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or _DEFAULT_PORTS[scheme]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Origin(scheme, host, port), target.encode("ascii")


def request_headers(method: bytes, headers: Headers, origin: Origin, body: bytes) -> Headers:
    """``headers`` plus Host and Content-Length when the caller did not set them."""
    has_host = has_length = False
    for name, _ in headers:
        lname = name.lower()
        if lname == b"host":
            has_host = True
        elif lname == b"content-length" or lname == b"transfer-encoding":
            has_length = True
    out = list(headers) if has_host else [(b"host", _ascii(origin.authority)), *headers]
    if not has_length and (body or method.upper() in _BODY_METHODS):
        out.append((b"content-length", b"%d" % len(body)))
    return out


def _ascii(text: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        return text.encode("idna")


class _OriginPool:
    __slots__ = ("origin", "connections", "waiters")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.connections: list[HTTP11Connection] = []
        self.waiters: deque[asyncio.Future[HTTP11Connection]] = deque()


class ConnectionPool:
    """Lends HTTP/1.1 connections per origin (scheme, host, port), at most N at a time.

    ``ssl_context_factory`` is called once, at the first https request; ``timeouts`` is the
    default for requests that pass none.
    """

    def __init__(
        self,
        *,
        max_connections_per_origin: int = 100,
        idle_timeout: float | None = 60.0,
        ssl_context_factory: Callable[[], ssl.SSLContext] = create_ssl_context,
        timeouts: Timeouts | None = None,
        high_water: int = HIGH_WATER,
        low_water: int = LOW_WATER,
    ) -> None:
        if max_connections_per_origin < 1:
            raise ValueError("max_connections_per_origin must be at least 1")
        self._max = max_connections_per_origin
        self._idle_timeout = idle_timeout
        self._ssl_context_factory = ssl_context_factory
        self._ssl_context: ssl.SSLContext | None = None
        self._timeouts = timeouts or Timeouts()
        self._high_water = high_water
        self._low_water = low_water
        self._origins: dict[Origin, _OriginPool] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(
        self,
        method: bytes,
        url: str,
        headers: Headers,
        body: bytes = b"",
        timeouts: Timeouts | None = None,
    ) -> Response:
        """Send one request on a pooled connection and return once the response head is in.

        The caller must read the body to the end or ``aclose()`` the response (``async with``
        does it) to give the connection back.

        Raises:
            ValueError: ``url`` is not an absolute http(s) URL.
            UpstreamTimeout: phase "pool", "connect", "first_byte".
            UpstreamConnectError, UpstreamTLSError, UpstreamProtocolError, UpstreamClosed.
        """
        t = timeouts or self._timeouts
        origin, target = parse_url(url)
        headers = request_headers(method, headers, origin, body)
        if origin.scheme == "https" and self._ssl_context is None:
            self._ssl_context = self._ssl_context_factory()
        with map_errors("pool", str(origin)):
            conn = await self._acquire(origin, t.pool)
        try:
            head = await conn.handle_request(method, target, headers, body, t)
        except BaseException:
            conn.abort()
            self._release(conn)
            raise
        return Response(conn, head, t.read, self._release)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per origin URL: total, idle and in-use connections and queued waiters."""
        out: dict[str, dict[str, int]] = {}
        for origin, op in self._origins.items():
            live = [c for c in op.connections if not c.is_closed()]
            idle = sum(1 for c in live if c.is_idle())
            out[str(origin)] = {
                "total": len(live),
                "idle": idle,
                "in_use": len(live) - idle,
                "waiters": sum(1 for f in op.waiters if not f.done()),
            }
        return out

    async def aclose(self) -> None:
        """Close every connection (in use ones too) and fail queued requests; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        origins = list(self._origins.values())
        self._origins.clear()
        closing: list[asyncio.Future[None]] = []
        for op in origins:
            for fut in op.waiters:
                if not fut.done():
                    fut.set_exception(_pool_closed(op.origin))
            for conn in op.connections:
                conn.abort()
                if (closed := conn.wait_closed()) is not None:
                    closing.append(closed)
        if closing:
            await asyncio.wait(closing, timeout=_CLOSE_WAIT)

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _acquire(self, origin: Origin, pool_timeout: float | None) -> HTTP11Connection:
        if self._closed:
            raise _pool_closed(origin)
        loop = asyncio.get_running_loop()
        op = self._origins.get(origin)
        if op is None:
            op = self._origins[origin] = _OriginPool(origin)
        fut: asyncio.Future[HTTP11Connection] = loop.create_future()
        op.waiters.append(fut)
        self._assign(op)
        if fut.done():
            return fut.result()
        timer = None if pool_timeout is None else loop.call_later(pool_timeout, _expire, fut)
        try:
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                conn = fut.result()  # granted in the same instant we were cancelled
                conn.abort()
                self._release(conn)
            with suppress(ValueError):
                op.waiters.remove(fut)
            self._assign(op)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _assign(self, op: _OriginPool) -> None:
        """Drop dead connections, then serve waiters in order: idle first, else a new slot."""
        if self._origins.get(op.origin) is not op:
            return
        now = asyncio.get_running_loop().time()
        alive: list[HTTP11Connection] = []
        for conn in op.connections:
            if conn.is_closed():
                continue
            if conn.is_idle() and conn.has_expired(now):
                conn.abort()
                continue
            alive.append(conn)
        op.connections = alive
        waiters = op.waiters
        while waiters:
            fut = waiters[0]
            if fut.done():
                waiters.popleft()
                continue
            idle = next((c for c in reversed(alive) if c.is_available()), None)
            if idle is not None:
                idle.claim()
                conn = idle
            elif len(alive) < self._max:
                conn = self._new_connection(op.origin)
                alive.append(conn)
            else:
                break
            waiters.popleft()
            fut.set_result(conn)
        if not alive and not waiters:
            del self._origins[op.origin]

    def _new_connection(self, origin: Origin) -> HTTP11Connection:
        return HTTP11Connection(
            origin,
            ssl_context=self._ssl_context if origin.scheme == "https" else None,
            keepalive_expiry=self._idle_timeout,
            high_water=self._high_water,
            low_water=self._low_water,
        )

    def _release(self, conn: HTTP11Connection) -> None:
        """A response is done with ``conn`` (already idled or aborted by it): re-assign."""
        op = self._origins.get(conn.origin)
        if op is None or self._closed:
            conn.abort()
            return
        if conn.is_idle():
            with suppress(ValueError):  # most recently used goes last: reused first
                op.connections.remove(conn)
                op.connections.append(conn)
            expires = conn.expires_at
            if self._sweep is None and expires is not None:
                loop = asyncio.get_running_loop()
                self._sweep = loop.call_at(expires + _SWEEP_SLACK, self._on_sweep)
        self._assign(op)

    def _on_sweep(self) -> None:
        self._sweep = None
        for op in list(self._origins.values()):
            self._assign(op)
        deadlines = [
            expires
            for op in self._origins.values()
            for conn in op.connections
            if (expires := conn.expires_at) is not None
        ]
        if deadlines:
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_at(min(deadlines) + _SWEEP_SLACK, self._on_sweep)


class Response:
    """Status, headers and a body stream that gives its connection back when read or closed.

    ``headers`` names are lower-case. Use ``async with``: leaving the block releases the
    connection, and leaving it by an exception (cancellation too) closes it instead of pooling.
    """

    __slots__ = ("status", "headers", "reason", "_conn", "_timeout", "_on_release", "_state")

    def __init__(
        self,
        connection: HTTP11Connection,
        head: ResponseHead,
        read_timeout: float | None,
        on_release: Callable[[HTTP11Connection], None] | None = None,
    ) -> None:
        self.status, self.headers, self.reason = head
        self._conn = connection
        self._timeout = read_timeout
        self._on_release = on_release
        self._state = "open"  # -> "done" (body read to the end) or "closed" (abandoned)

    @property
    def is_closed(self) -> bool:
        """True once the connection has been given back (body read to the end, or closed)."""
        return self._state != "open"

    def get_header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        return next((value for key, value in self.headers if key == name), None)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; the upstream may only send as fast as this is read."""
        return _BodyIterator(self)

    async def read(self, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """The rest of the body in one piece.

        Raises:
            UpstreamProtocolError: the body is longer than ``max_bytes`` (connection closed).
        """
        parts: list[bytes] = []
        total = 0
        while (chunk := await self._next()) is not None:
            total += len(chunk)
            if total > max_bytes:
                self._release(abort=True)
                raise UpstreamProtocolError(
                    f"{self._conn.origin}: response body exceeds {max_bytes} bytes",
                    code="upstream_response_too_large",
                )
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        """Give the connection back: pooled if the response is complete and reusable."""
        self._release(abort=False)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._release(abort=exc_type is not None)

    async def _next(self) -> bytes | None:
        if self._state == "done":
            return None
        if self._state == "closed":
            raise UpstreamClosed(f"{self._conn.origin}: response was closed before its end")
        try:
            chunk = await self._conn.receive_body_chunk(self._timeout)
        except BaseException:
            self._release(abort=True)
            raise
        if chunk is None:
            self._release(abort=False, state="done")
        return chunk

    def _release(self, *, abort: bool, state: str = "closed") -> None:
        if self._state != "open":
            return
        self._state = state
        if abort:
            self._conn.abort()
        else:
            self._conn.response_closed()
        if self._on_release is not None:
            self._on_release(self._conn)


class _BodyIterator:
    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._response._next()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


def _pool_closed(origin: Origin) -> UpstreamConnectError:
    return UpstreamConnectError(f"{origin}: connection pool is closed", code="upstream_pool_closed")


def _expire(fut: asyncio.Future[HTTP11Connection]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())
