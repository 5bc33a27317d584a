"""Per-origin connection pool (limits, FIFO waiters, reuse, idle eviction), HTTP/1.1 and HTTP/2.

``_assign`` is synchronous bookkeeping that hands free connections (an idle HTTP/1.1 one, a
stream slot on an HTTP/2 one), fresh unconnected ones, or a ticket to dial a new one, to
queued requests in arrival order; the requesting task then does the I/O itself. Connections
are known only by ``is_available``/``has_expired``/``is_idle``/``is_closed`` and come back when
their ``Response`` is read to the end or closed. The version per origin comes from the
request's ``http2`` choice and, over TLS, from ALPN. No HTTP parsing lives here; the only
retry is a stream the HTTP/2 peer refused (nothing of it was processed).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from functools import lru_cache, partial
from urllib.parse import urlsplit

from modelmux.config.settings import Timeouts
from modelmux.errors import Headers
from modelmux.http1.client import Backend
from modelmux.upstream.budget import BodyBudget
from modelmux.upstream.connection import HTTP11Connection
from modelmux.upstream.dial import open_tls
from modelmux.upstream.errors import UpstreamConnectError, map_errors, raise_mapped
from modelmux.upstream.h1link import HIGH_WATER, LOW_WATER
from modelmux.upstream.h1link import HIGH_WATER, LOW_WATER
from modelmux.upstream.h2connection import HTTP2Connection
from modelmux.upstream.h2stream import StreamRefused
from modelmux.upstream.origin import Origin
from modelmux.upstream.primed import PRIMED
from modelmux.upstream.response import DEFAULT_MAX_BYTES, Response
from modelmux.upstream.tls import create_ssl_context

__all__ = ["DEFAULT_MAX_BYTES", "ConnectionPool", "Response", "parse_url", "request_headers"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_SWEEP_SLACK = 0.005  # fire the idle sweep just after the deadline, never a hair before it
_CLOSE_WAIT = 5.0
_REFUSED_RETRIES = 3  # streams an HTTP/2 peer refused (GOAWAY, REFUSED_STREAM) are re-sent
_ALPN: dict[bool | None, tuple[str, ...]] = {None: ("h2", "http/1.1"), True: ("h2",),
                                             False: ("http/1.1",)}

Connection = HTTP11Connection | HTTP2Connection
DEFAULT_HTTP1: Backend = "fast"


@lru_cache(maxsize=1024)
def parse_url(url: str) -> tuple[Origin, bytes]:
    """Split an absolute http(s) URL into its origin and request target (path?query).

    Cached: providers send to the few URLs their config names, and ``urlsplit`` is a few
    microseconds per request otherwise.

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


@lru_cache(maxsize=1024)
def _host(origin: Origin) -> bytes:
    """``origin.authority_bytes``, worked out once per origin rather than per request."""
    return origin.authority_bytes


def request_headers(method: bytes, headers: Headers, origin: Origin, body: bytes) -> Headers:
    """``headers`` plus Host and Content-Length when the caller did not set them."""
    has_host = has_length = False
    for name, _ in headers:
        lname = name.lower()
        if lname == b"host":
            has_host = True
        elif lname == b"content-length" or lname == b"transfer-encoding":
            has_length = True
    out = list(headers) if has_host else [(b"host", _host(origin)), *headers]
    if not has_length and (body or method.upper() in _BODY_METHODS):
        out.append((b"content-length", b"%d" % len(body)))
    return out


class _OriginPool:
    """One origin's connections for one ``http2`` choice (None: by ALPN, True, False)."""

    __slots__ = ("connections", "dialing", "http2", "idle", "key", "learned", "multiplexed",
                 "origin", "waiters")

    def __init__(self, origin: Origin, http2: bool | None) -> None:
        self.origin = origin
        self.http2 = http2
        self.connections: list[Connection] = []  # may hold closed ones until the next prune
        self.idle: list[HTTP11Connection] = []  # released HTTP/1.1 ones, most recent last
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()  # None: go and dial
        self.dialing = 0
        self.learned: bool | None = None  # ALPN said h2 (True) or HTTP/1.1 (False)
        self.key = (origin, http2)  # attributes, not properties: read on every request
        self.multiplexed = origin.scheme == "https" if http2 is None else http2
        """HTTP/2 connections can be among ``connections`` (prior knowledge or ALPN over TLS)."""

    def take_idle(self, now: float) -> HTTP11Connection | None:
        """Pop the most recently released idle HTTP/1.1 connection; expired ones are aborted.

        Stale entries (closed, expired, or already claimed) are dropped on the way: O(1) a
        checkout, amortised, instead of a scan of every pooled connection.
        """
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.is_available() and not conn.has_expired(now):
                return conn
            if conn.is_idle() or conn.is_closed():  # expired, or closed while idle
                conn.abort()
                self.forget(conn)
        return None

    def forget(self, conn: Connection) -> None:
        """Drop a closed connection (a linear remove, paid once per connection's end)."""
        with suppress(ValueError):
            self.connections.remove(conn)

    def prune(self, now: float) -> None:
        """Forget closed connections and abort expired idle ones: a full scan, when needed."""
        alive: list[Connection] = []
        for conn in self.connections:
            if conn.is_closed():
                continue
            if conn.is_idle() and conn.has_expired(now):
                conn.abort()
                continue
            alive.append(conn)
        self.connections = alive
        self.idle = list(dict.fromkeys(c for c in self.idle if c.is_available()))
    def dials(self) -> bool:
        """New connections are dialled by the requester (HTTP/2 or ALPN not yet known)."""
        if self.http2 is None:
            return self.origin.scheme == "https" and self.learned is not False
        return self.http2


class ConnectionPool:
    """Lends HTTP/1.1 connections and HTTP/2 streams per origin, at most N connections each.

    ``ssl_context_factory`` is called at the first https request of each ALPN offer and must
    return a new context each time (the pool sets the offer on it); ``timeouts`` is the default
    for requests that pass none; HTTP/2 connections PING the peer every ``ping_interval``
    seconds and close when a PING goes unanswered until the next one. ``http1`` picks the
    HTTP/1.1 client parser: "fast" (default) or "h11", the reference. ``budget`` bounds the
    bytes every ``Response.read`` buffers at once (default: a budget of this pool's own).
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
        ping_interval: float | None = 30.0,
        http1: Backend | None = None,
        budget: BodyBudget | None = None,
    ) -> None:
        if max_connections_per_origin < 1:
            raise ValueError("max_connections_per_origin must be at least 1")
        self._max = max_connections_per_origin
        self._idle_timeout = idle_timeout
        self._ssl_context_factory = ssl_context_factory
        self._ssl_contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._timeouts = timeouts or Timeouts()
        self._high_water = high_water
        self._low_water = low_water
        self._ping_interval = ping_interval
        self._http1: Backend = http1 or DEFAULT_HTTP1
        self.budget = budget if budget is not None else BodyBudget()
        self._origins: dict[tuple[Origin, bool | None], _OriginPool] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(
        self,
        method: bytes,
        url: str,
        headers: Headers,
        body: bytes = b"",
        timeouts: Timeouts | None = None,
        *,
        http2: bool | None = None,
    ) -> Response:
        """Send one request on a pooled connection and return once the response head is in.

        ``http2``: None offers h2 and http/1.1 by ALPN over TLS (HTTP/1.1 for cleartext), True
        speaks only HTTP/2 (prior knowledge for cleartext), False only HTTP/1.1. The caller
        must read the body to the end or ``aclose()`` the response (``async with`` does it).

        Raises:
            ValueError: ``url`` is not an absolute http(s) URL.
            UpstreamTimeout: phase "pool", "connect", "first_byte".
            UpstreamConnectError, UpstreamTLSError, UpstreamProtocolError, UpstreamClosed.
        """
        primed = PRIMED.get()
        if primed is not None and primed.matches(url, body):
            PRIMED.set(None)  # sent by a callback already: its outcome, once (``primed``)
            return primed.take()
        t = timeouts or self._timeouts
        origin, target = parse_url(url)
        headers = request_headers(method, headers, origin, body)
        refused = 0
        while True:
            if self._closed:
                raise _pool_closed(origin)
            op = self._origins.get((origin, http2))
            if op is None:
                op = self._origins[origin, http2] = _OriginPool(origin, http2)
            try:  # map_errors("pool"), as a try: nothing to pay per request
                conn = await self._acquire(op, t.pool)
            except Exception as exc:
                raise_mapped(exc, "pool", origin)
                raise
            if conn is None:
                conn = await self._dial(op, t)
            release = partial(self._release, op, conn)
            if isinstance(conn, HTTP2Connection):
                try:
                    stream = await conn.handle_request(method, target, headers, body, t)
                except StreamRefused:
                    release()
                    refused += 1
                    if refused > _REFUSED_RETRIES:
                        raise
                    continue  # the peer did not process it: send it again
                except BaseException:
                    release()
                    raise
                return Response(stream, stream.response_head, t.read, release, self.budget)
            try:
                head = await conn.handle_request(method, target, headers, body, t)
            except BaseException:
                conn.abort()
                release()
                raise
            return Response(conn, head, t.read, release, self.budget)

    def lend_idle(self, url: str, http2: bool | None = None
                  ) -> tuple[HTTP11Connection, Callable[[], None], Origin, bytes] | None:
        """An idle pooled HTTP/1.1 connection to ``url``'s origin, claimed now, with the
        callable that gives it back (after ``response_closed`` or ``abort``), the origin and
        the request target; None when none is idle, requests queue, or HTTP/2 may be spoken.
        For a caller that sends from a callback; ``request`` is the general way.

        Raises:
            ValueError: ``url`` is not an absolute http(s) URL.
        """
        origin, target = parse_url(url)
        op = self._origins.get((origin, http2))
        if op is None or self._closed or op.waiters or op.multiplexed:
            return None
        idle, now = op.idle, asyncio.get_running_loop().time()
        while idle:  # take_idle and claim, written out: a call per step less
            conn = idle.pop()
            if conn.claim_fresh(now):
                return conn, partial(self._release, op, conn), origin, target
            if conn.is_idle() or conn.is_closed():  # expired, or closed while idle
                conn.abort()
                op.forget(conn)
        return None

    def stats(self) -> dict[str, dict[str, int]]:
        """Per origin URL: total, idle and in-use connections and queued waiters."""
        out: dict[str, dict[str, int]] = {}
        for op in self._origins.values():
            live = [c for c in op.connections if not c.is_closed()]
            waiting = sum(1 for f in op.waiters if not f.done())
            if not live and not waiting:
                continue  # only closed ones left, not yet pruned
            idle = sum(1 for c in live if c.is_idle())
            row = out.setdefault(str(op.origin), dict.fromkeys(
                ("total", "idle", "in_use", "waiters"), 0))
            row["total"] += len(live)
            row["idle"] += idle
            row["in_use"] += len(live) - idle
            row["waiters"] += waiting
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

    async def _acquire(self, op: _OriginPool, pool_timeout: float | None) -> Connection | None:
        """A claimed connection, or None: the caller must dial a new one (``_dial``)."""
        if self._closed:
            raise _pool_closed(op.origin)
        loop = asyncio.get_running_loop()
        if not op.waiters and not op.multiplexed:  # the usual case: no queue, no HTTP/2
            free = op.take_idle(loop.time())
            if free is not None:
                free.claim()
                return free
        fut: asyncio.Future[Connection | None] = loop.create_future()
        op.waiters.append(fut)
        self._assign(op)
        if fut.done():
            return fut.result()
        timer = None if pool_timeout is None else loop.call_later(pool_timeout, _expire, fut)
        try:
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._give_back(op, fut.result())  # granted in the same instant we were cancelled
            with suppress(ValueError):
                op.waiters.remove(fut)
            self._assign(op)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _give_back(self, op: _OriginPool, grant: Connection | None) -> None:
        if grant is None:
            op.dialing -= 1
        elif isinstance(grant, HTTP2Connection):
            grant.unclaim()
        else:
            grant.abort()

    def _assign(self, op: _OriginPool, *, prune: bool = False) -> None:
        """Serve waiters in order: an idle connection, else a new slot; drop dead ones.

        Idle HTTP/1.1 connections come off ``op.idle`` in O(1) (connections that end are
        dropped by ``_release``/``take_idle``). Every connection is scanned only where HTTP/2
        may be spoken (a handful of multiplexed connections, as before), when the per-origin
        limit looks reached (one may have closed while busy), or at the idle sweep (``prune``).
        """
        if self._origins.get(op.key) is not op:
            return
        now = asyncio.get_running_loop().time()
        multiplexed = op.multiplexed
        pruned = prune or multiplexed
        if pruned:
            op.prune(now)
        waiters = op.waiters
        dials = op.dials()
        while waiters:
            fut = waiters[0]
            if fut.done():
                waiters.popleft()
                continue
            grant: Connection | None
            free: Connection | None = op.take_idle(now)
            if free is None and multiplexed:
                free = next((c for c in reversed(op.connections) if c.is_available()), None)
            if free is None and not pruned and len(op.connections) + op.dialing >= self._max:
                op.prune(now)  # the limit may be reached only by connections already closed
                pruned = True
                continue
            alive = op.connections
            if free is not None:
                free.claim()
                grant = free
            elif dials and op.dialing:
                break  # the connection being dialled may carry many streams: wait for it
            elif len(alive) + op.dialing < self._max:
                if dials:
                    op.dialing += 1
                    grant = None
                else:
                    grant = self._new_connection(op.origin)
                    alive.append(grant)
            else:
                break
            waiters.popleft()
            fut.set_result(grant)
        if not op.connections and not waiters and not op.dialing:
            del self._origins[op.key]

    async def _dial(self, op: _OriginPool, t: Timeouts) -> Connection:
        """Open a connection for ``op`` whose version HTTP/2 prior knowledge or ALPN decides.

        The new connection is registered and claimed for the caller; HTTP/2 stream slots left
        over go to the other waiters.
        """
        origin = op.origin
        conn: Connection | None = None
        try:
            with map_errors("connect", origin):
                if op.http2 is None:  # https, ALPN decides; one deadline for TLS and SETTINGS
                    async with asyncio.timeout(t.connect):
                        handover = await open_tls(origin, self._context(_ALPN[None]))
                        if handover.alpn == "h2":
                            conn = self._new_h2(op)
                            await conn.connect(None, handover)
                    if conn is None:
                        conn = self._new_connection(origin, context=self._context(_ALPN[False]))
                        conn.adopt(handover)
                else:
                    conn = self._new_h2(op)
                    await conn.connect(t.connect)
            if self._origins.get(op.key) is not op:
                raise _pool_closed(origin)
        except BaseException:
            if conn is not None:
                conn.abort()
            op.dialing -= 1
            self._assign(op)
            raise
        op.dialing -= 1
        op.learned = isinstance(conn, HTTP2Connection)
        if isinstance(conn, HTTP2Connection) and conn.is_available():
            conn.claim()  # else (a peer allowing no stream yet) handle_request refuses: retried
        op.connections.append(conn)
        self._assign(op)
        return conn

    def _context(self, alpn: tuple[str, ...]) -> ssl.SSLContext:
        ctx = self._ssl_contexts.get(alpn)
        if ctx is None:
            ctx = self._ssl_contexts[alpn] = self._ssl_context_factory()
            ctx.set_alpn_protocols(list(alpn))
        return ctx

    def _new_h2(self, op: _OriginPool) -> HTTP2Connection:
        https = op.origin.scheme == "https"
        return HTTP2Connection(
            op.origin,
            ssl_context=self._context(_ALPN[True]) if https else None,
            keepalive_expiry=self._idle_timeout,
            ping_interval=self._ping_interval,
            notify=partial(self._assign, op),
        )

    def _new_connection(self, origin: Origin, *,
                        context: ssl.SSLContext | None = None) -> HTTP11Connection:
        if context is None and origin.scheme == "https":
            context = self._context(_ALPN[False])
        return HTTP11Connection(
            origin,
            ssl_context=context,
            keepalive_expiry=self._idle_timeout,
            high_water=self._high_water,
            low_water=self._low_water,
            http1=self._http1,
        )

    def _release(self, op: _OriginPool, conn: Connection) -> None:
        """A response is done with ``conn`` (idled, stream closed or aborted): re-assign."""
        if self._origins.get(op.key) is not op or self._closed:
            conn.abort()
            return
        if conn.is_closed():
            op.forget(conn)
        elif conn.is_idle():
            if isinstance(conn, HTTP11Connection):
                op.idle.append(conn)  # most recently used goes last: reused first
            else:
                with suppress(ValueError):
                    op.connections.remove(conn)
                    op.connections.append(conn)
            expires = conn.expires_at
            if self._sweep is None and expires is not None:
                loop = asyncio.get_running_loop()
                self._sweep = loop.call_at(expires + _SWEEP_SLACK, self._on_sweep)
        if op.waiters or op.multiplexed or not op.connections:  # else _assign has nothing to do
            self._assign(op)

    def _on_sweep(self) -> None:
        self._sweep = None
        for op in list(self._origins.values()):
            self._assign(op, prune=True)
        deadlines = [
            expires
            for op in self._origins.values()
            for conn in op.connections
            if (expires := conn.expires_at) is not None
        ]
        if deadlines:
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_at(min(deadlines) + _SWEEP_SLACK, self._on_sweep)


def _pool_closed(origin: Origin) -> UpstreamConnectError:
    return UpstreamConnectError(f"{origin}: connection pool is closed", code="upstream_pool_closed")


def _expire(fut: asyncio.Future[Connection | None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())
