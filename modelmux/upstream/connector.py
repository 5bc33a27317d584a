"""Makes the pool's connections: HTTP/1.1 or HTTP/2, by prior knowledge or by ALPN over TLS.

Holds the per-connection settings and one TLS context per ALPN offer. Which request gets a
connection, and how many there may be, is the pool's; the bytes on the wire are the
connections' own.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from modelmux.http1.client import Backend
from modelmux.upstream.connection import HTTP11Connection
from modelmux.upstream.dial import open_tls
from modelmux.upstream.errors import map_errors
from modelmux.upstream.h2connection import HTTP2Connection
from modelmux.upstream.origin import Origin

__all__ = ["Connector", "UpstreamConnection"]

_ALPN: dict[bool | None, tuple[str, ...]] = {None: ("h2", "http/1.1"), True: ("h2",),
                                             False: ("http/1.1",)}
"""The ALPN offer for each ``http2`` choice: None lets the server pick."""

UpstreamConnection = HTTP11Connection | HTTP2Connection


class Connector:
    """New connections to an origin, with the pool's settings.

    ``ssl_context_factory`` is called at the first https connection of each ALPN offer and
    must return a new context each time (the offer is set on it).
    """

    __slots__ = ("_contexts", "_factory", "_high_water", "_http1", "_idle_timeout",
                 "_low_water", "_ping_interval")

    def __init__(
        self,
        *,
        ssl_context_factory: Callable[[], ssl.SSLContext],
        idle_timeout: float | None,
        high_water: int,
        low_water: int,
        ping_interval: float | None,
        http1: Backend,
    ) -> None:
        self._factory = ssl_context_factory
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._idle_timeout = idle_timeout
        self._high_water = high_water
        self._low_water = low_water
        self._ping_interval = ping_interval
        self._http1 = http1

    def new_http1(self, origin: Origin, *, context: ssl.SSLContext | None = None) -> HTTP11Connection:
        """An unconnected HTTP/1.1 connection (its first request connects it)."""
        if context is None and origin.scheme == "https":
            context = self.context(_ALPN[False])
        return HTTP11Connection(
            origin,
            ssl_context=context,
            keepalive_expiry=self._idle_timeout,
            high_water=self._high_water,
            low_water=self._low_water,
            http1=self._http1,
        )

    def new_http2(self, origin: Origin, notify: Callable[[], None]) -> HTTP2Connection:
        """An unconnected HTTP/2 connection; ``notify`` hears when its stream slots change."""
        https = origin.scheme == "https"
        return HTTP2Connection(
            origin,
            ssl_context=self.context(_ALPN[True]) if https else None,
            keepalive_expiry=self._idle_timeout,
            ping_interval=self._ping_interval,
            notify=notify,
        )

    async def open(self, origin: Origin, http2: bool | None, timeout: float | None,
                   notify: Callable[[], None]) -> UpstreamConnection:
        """A connected connection, the caller's to send on: HTTP/2 by prior knowledge
        (``http2`` True), else TLS whose ALPN decides (``http2`` None); one ``timeout`` for
        TLS and the HTTP/2 SETTINGS exchange.

        Raises:
            UpstreamTimeout (phase "connect"), UpstreamConnectError, UpstreamTLSError,
            UpstreamProtocolError, UpstreamClosed.
        """
        conn: UpstreamConnection | None = None
        try:
            with map_errors("connect", origin):
                if http2 is None:
                    async with asyncio.timeout(timeout):
                        handover = await open_tls(origin, self.context(_ALPN[None]))
                        if handover.alpn == "h2":
                            conn = self.new_http2(origin, notify)
                            await conn.connect(None, handover)
                    if conn is None:
                        conn = self.new_http1(origin, context=self.context(_ALPN[False]))
                        conn.adopt(handover)
                else:
                    conn = self.new_http2(origin, notify)
                    await conn.connect(timeout)
        except BaseException:
            if conn is not None:
                conn.abort()
            raise
        return conn

    def context(self, alpn: tuple[str, ...]) -> ssl.SSLContext:
        """The TLS context offering ``alpn``, made once."""
        ctx = self._contexts.get(alpn)
        if ctx is None:
            ctx = self._contexts[alpn] = self._factory()
            ctx.set_alpn_protocols(list(alpn))
        return ctx
