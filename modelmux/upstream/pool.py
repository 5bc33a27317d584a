"""Per-origin connection pool (limits, FIFO waiters, reuse, idle eviction), HTTP/1.1 and HTTP/2.

``_assign`` is synchronous bookkeeping that hands free connections (an idle HTTP/1.1 one, a
stream slot on an HTTP/2 one), fresh unconnected ones, or a ticket to dial a new one, to
queued requests in arrival order; the requesting task then does the I/O itself. Connections
are known only by ``is_available``/``has_expired``/``is_idle``/``is_closed`` and come back when
their ``Response`` is read to the end or closed. The version per origin comes from the
request's ``http2`` choice and, over TLS, from ALPN. No HTTP parsing lives here; the only
retry is a stream the HTTP/2 peer refused (nothing of it was processed). One origin's lists
are ``origin_pool``'s, making connections is ``connector``'s, a URL's origin and the headers
a request adds are ``prepare``'s.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from contextlib import suppress
from functools import partial

from modelmux.config.settings import Timeouts
from modelmux.errors import Headers
from modelmux.http1.client import Backend
from modelmux.upstream.budget import BodyBudget
from modelmux.upstream.connection import HTTP11Connection
from modelmux.upstream.connector import Connector, UpstreamConnection
from modelmux.upstream.errors import UpstreamConnectError, raise_mapped
from modelmux.upstream.h1link import HIGH_WATER, LOW_WATER
from modelmux.upstream.h2connection import HTTP2Connection
from modelmux.upstream.h2stream import StreamRefused
from modelmux.upstream.origin import Origin
from modelmux.upstream.origin_pool import OriginPool
from modelmux.upstream.prepare import parse_url, request_headers
from modelmux.upstream.primed import PRIMED
from modelmux.upstream.response import Response
from modelmux.upstream.tls import create_ssl_context

__all__ = ["ConnectionPool"]

_SWEEP_SLACK = 0.005  # fire the idle sweep just after the deadline, never a hair before it
_CLOSE_WAIT = 5.0
_REFUSED_RETRIES = 3  # streams an HTTP/2 peer refused (GOAWAY, REFUSED_STREAM) are re-sent

DEFAULT_HTTP1: Backend = "fast"


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
        self._connector = Connector(
            ssl_context_factory=ssl_context_factory, idle_timeout=idle_timeout,
            high_water=high_water, low_water=low_water, ping_interval=ping_interval,
            http1=http1 or DEFAULT_HTTP1,
        )
        self._timeouts = timeouts or Timeouts()
        self.budget = budget if budget is not None else BodyBudget()
        self._origins: dict[tuple[Origin, bool | None], OriginPool] = {}
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
                op = self._origins[origin, http2] = OriginPool(origin, http2)
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

    async def _acquire(self, op: OriginPool, pool_timeout: float | None
                       ) -> UpstreamConnection | None:
        """A claimed connection, or None: the caller must dial a new one (``_dial``)."""
        if self._closed:
            raise _pool_closed(op.origin)
        loop = asyncio.get_running_loop()
        if not op.waiters and not op.multiplexed:  # the usual case: no queue, no HTTP/2
            free = op.take_idle(loop.time())
            if free is not None:
                free.claim()
                return free
        fut: asyncio.Future[UpstreamConnection | None] = loop.create_future()
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

    def _give_back(self, op: OriginPool, grant: UpstreamConnection | None) -> None:
        if grant is None:
            op.dialing -= 1
        elif isinstance(grant, HTTP2Connection):
            grant.unclaim()
        else:
            grant.abort()

    def _assign(self, op: OriginPool, *, prune: bool = False) -> None:
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
            grant: UpstreamConnection | None
            free: UpstreamConnection | None = op.take_idle(now)
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
                    grant = self._connector.new_http1(op.origin)
                    alive.append(grant)
            else:
                break
            waiters.popleft()
            fut.set_result(grant)
        if not op.connections and not waiters and not op.dialing:
            del self._origins[op.key]

    async def _dial(self, op: OriginPool, t: Timeouts) -> UpstreamConnection:
        """Open a connection for ``op`` whose version HTTP/2 prior knowledge or ALPN decides.

        The new connection is registered and claimed for the caller; HTTP/2 stream slots left
        over go to the other waiters.
        """
        try:
            conn = await self._connector.open(op.origin, op.http2, t.connect,
                                              partial(self._assign, op))
            if self._origins.get(op.key) is not op:
                conn.abort()
                raise _pool_closed(op.origin)
        except BaseException:
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

    def _release(self, op: OriginPool, conn: UpstreamConnection) -> None:
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


def _expire(fut: asyncio.Future[UpstreamConnection | None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())
