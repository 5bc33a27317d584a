"""One origin's share of the pool: its connections, idle HTTP/1.1 ones, queued requests.

Bookkeeping only, no I/O: the pool (``pool.ConnectionPool``) decides who gets what; this keeps
the lists it decides from, and drops or aborts connections that closed or expired.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress

from modelmux.upstream.connection import HTTP11Connection
from modelmux.upstream.connector import UpstreamConnection
from modelmux.upstream.origin import Origin

__all__ = ["OriginPool"]


class OriginPool:
    """One origin's connections for one ``http2`` choice (None: by ALPN, True, False)."""

    __slots__ = ("connections", "dialing", "http2", "idle", "key", "learned", "multiplexed",
                 "origin", "waiters")

    def __init__(self, origin: Origin, http2: bool | None) -> None:
        self.origin = origin
        self.http2 = http2
        self.connections: list[UpstreamConnection] = []  # may hold closed ones until the next prune
        self.idle: list[HTTP11Connection] = []  # released HTTP/1.1 ones, most recent last
        # None: go and dial
        self.waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
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

    def forget(self, conn: UpstreamConnection) -> None:
        """Drop a closed connection (a linear remove, paid once per connection's end)."""
        with suppress(ValueError):
            self.connections.remove(conn)

    def prune(self, now: float) -> None:
        """Forget closed connections and abort expired idle ones: a full scan, when needed."""
        alive: list[UpstreamConnection] = []
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
