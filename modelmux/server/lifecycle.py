"""The server process's listening sockets, open connections, and graceful drain.

``Server`` binds (or adopts) listening sockets, counts connections, and on shutdown stops
accepting, lets in-flight requests finish for up to ``drain_timeout`` seconds, then cuts what is
left. It owns no routes and no protocol details.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

from modelmux.config.settings import H2Settings, ServerLimits
from modelmux.http1.common import RequestHead
from modelmux.http1.server import backend
from modelmux.server.exchange import Handler
from modelmux.server.h1 import H1Protocol
from modelmux.server.host import Connection
from modelmux.server.listener import address_of, bind_sockets
from modelmux.server.sniff import SniffProtocol, upgrade_h2c
from modelmux.server.tls import CertificateSwitch

log = logging.getLogger("modelmux.server")

HANDOVER_GRACE = 1.0


class Server:
    """Accepts HTTP/1.1 and HTTP/2 connections (TLS optional) and hands each request to ``handler``."""

    def __init__(self, handler: Handler, limits: ServerLimits | None = None, *,
                 ssl_context: ssl.SSLContext | None = None, http2: H2Settings | None = None,
                 http1: str = "fast") -> None:
        """``http1`` picks the HTTP/1.1 backend: ``fast`` (native twin pair) or ``h11`` (reference).

        Raises:
            ValueError: unknown ``http1`` backend.
        """
        self.handler = handler
        self.limits = limits or ServerLimits()
        self.ssl_context = ssl_context
        self.tls = CertificateSwitch(ssl_context) if ssl_context is not None else None
        self.http2 = http2 or H2Settings()
        self.http1 = backend(http1)
        self.connections: set[Connection] = set()
        self.draining = False
        self.handover_grace: float | None = None  # set while draining after a hand-over
        self._listeners: list[asyncio.Server] = []
        self._drained: asyncio.Event | None = None

    async def listen(self, host: str, port: int, *, backlog: int = 2048) -> list[tuple[str, int]]:
        """Bind and start accepting; returns the bound (host, port) pairs (port 0 picks one)."""
        sockets = bind_sockets(host, port, backlog=backlog)
        for sock in sockets:
            await self.adopt(sock, backlog=backlog)
        return [address_of(sock) for sock in sockets]

    async def adopt(self, sock: socket.socket, *, backlog: int = 2048) -> None:
        """Start accepting on an already-bound listening socket (inherited or handed over)."""
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: SniffProtocol(self), sock=sock, backlog=backlog,
                                            ssl=self.ssl_context)
        self._listeners.append(listener)

    def listening_fds(self) -> list[int]:
        """The file descriptors of every listening socket (for an upgrade's hand-off)."""
        return [sock.fileno() for listener in self._listeners for sock in listener.sockets]

    def upgrade_h2c(self, protocol: H1Protocol, event: RequestHead) -> bool:
        """Switch an HTTP/1.1 connection to HTTP/2 on ``Upgrade: h2c``; False if it does not qualify."""
        return upgrade_h2c(protocol, event)

    def connection_lost(self, protocol: Connection) -> None:
        self.connections.discard(protocol)
        if self.draining and not self.connections and self._drained is not None:
            self._drained.set()

    def abort_all(self) -> None:
        """Cut every connection and cancel its handler now."""
        for protocol in list(self.connections):
            protocol.abort()

    async def shutdown(self, *, handover: bool = False) -> None:
        """Stop accepting, drain in-flight requests up to ``drain_timeout``, then cut the rest.

        ``handover`` is the drain after an upgrade handed the listening sockets on: an idle
        keep-alive connection (including one whose response was already under way, promising
        keep-alive) stays open for ``HANDOVER_GRACE`` seconds, so a request the client sends on
        it next is answered with ``Connection: close`` instead of lost, as closing it would race
        that request. An HTTP/2 connection gets its GOAWAY once idle (``H2Protocol.retire``).
        """
        self.draining = True
        if handover:
            self.handover_grace = HANDOVER_GRACE
        self._drained = asyncio.Event()
        for listener in self._listeners:
            listener.close()
        for protocol in list(self.connections):
            if handover:
                protocol.retire(HANDOVER_GRACE)
            else:
                protocol.shutdown()
        if self.connections:
            log.info("draining %d connection(s) for up to %.1fs",
                     len(self.connections), self.limits.drain_timeout)
            try:
                await asyncio.wait_for(self._drained.wait(), self.limits.drain_timeout)
            except TimeoutError:
                log.warning("drain timeout: cutting %d connection(s)", len(self.connections))
                self.abort_all()
        # Let cancelled handlers and closed transports run their callbacks.
        for _ in range(3):
            await asyncio.sleep(0)
        self._listeners.clear()
