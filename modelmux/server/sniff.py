"""The first protocol on every accepted connection: picks HTTP/1.1 or HTTP/2, then steps aside.

On TLS the ALPN choice decides; on cleartext the first bytes do (the 24-byte HTTP/2 connection
preface, else HTTP/1.1), before any HTTP/1.1 parser exists. The chosen protocol takes over the
transport and is fed the bytes read so far. It parses no HTTP itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from modelmux.errors import Headers
from modelmux.http1.common import RequestHead
from modelmux.server.h1 import H1Protocol
from modelmux.server.h2 import H2cUpgrade, H2Protocol

if TYPE_CHECKING:
    from modelmux.server.host import Host

_H2C_HOP = frozenset({b"connection", b"upgrade", b"http2-settings"})
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class SniffProtocol(asyncio.Protocol):
    """Holds a new connection until its HTTP version is known."""

    def __init__(self, server: Host) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            alpn = ssl_object.selected_alpn_protocol()
            self._hand_over(H2Protocol(self.server, self.server.http2) if alpn == "h2"
                            else H1Protocol(self.server))
            return
        if len(self.server.connections) >= self.server.limits.max_connections:
            self._hand_over(H1Protocol(self.server))  # which answers 503 and closes
            return
        self.server.connections.add(self)
        self._timer = asyncio.get_running_loop().call_later(
            self.server.limits.header_timeout, self.shutdown)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head = self.buffer[:len(PREFACE)]
        if head == PREFACE:
            self._hand_over(H2Protocol(self.server, self.server.http2))
        elif not PREFACE.startswith(head):
            self._hand_over(H1Protocol(self.server))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.server.connection_lost(self)

    def _hand_over(self, protocol: H1Protocol | H2Protocol) -> None:
        self._cancel_timer()
        self.server.connections.discard(self)
        assert self.transport is not None
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if self.buffer and not self.transport.is_closing():
            data, self.buffer = self.buffer, b""
            protocol.data_received(data)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self) -> None:
        """Graceful stop: nothing is in flight yet, so close."""
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def retire(self, grace: float) -> None:
        """Graceful stop after an upgrade: a just-accepted connection gets ``grace`` seconds to
        send its first request, which is then answered with ``Connection: close``."""
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(
            min(grace, self.server.limits.header_timeout), self.shutdown)

    def abort(self) -> None:
        """Cut the connection now."""
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()


def wants_h2c(headers: Headers) -> bool:
    """A bodiless request asking for ``Upgrade: h2c`` with an HTTP2-Settings header (RFC 7540 3.2)."""
    upgrade = connection = b""
    settings = False
    for name, value in headers:
        if name == b"upgrade":
            upgrade = value.lower()
        elif name == b"connection":
            connection = value.lower()
        elif name == b"http2-settings":
            settings = True
        elif name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return False
    return (settings and b"h2c" in [t.strip() for t in upgrade.split(b",")]
            and b"upgrade" in [t.strip() for t in connection.split(b",")])


def upgrade_h2c(h1: H1Protocol, event: RequestHead) -> bool:
    """Answer 101 and hand an HTTP/1.1 connection to HTTP/2 (the request becomes stream 1).

    Returns False, leaving the connection to HTTP/1.1, when the request does not qualify.
    """
    transport = h1.transport
    headers: Headers = event.headers
    if transport is None or transport.get_extra_info("ssl_object") is not None or not wants_h2c(headers):
        return False
    settings = next(value for name, value in headers if name == b"http2-settings")
    upgrade = H2cUpgrade(settings, event.method.decode("ascii"), event.target.decode("latin-1"),
                         [(n, v) for n, v in headers if n not in _H2C_HOP])
    rest = h1.conn.trailing
    h1.closed = True  # the HTTP/1.1 protocol is done; the HTTP/2 one owns the transport
    h1.server.connections.discard(h1)
    transport.write(b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n")
    protocol = H2Protocol(h1.server, h1.server.http2, upgrade=upgrade)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if rest and not transport.is_closing():
        protocol.data_received(rest)
    return True
