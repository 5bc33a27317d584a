"""Open a TLS connection before knowing which HTTP version will run on it (ALPN decides).

``open_tls`` connects with a placeholder protocol that keeps whatever arrives while the caller
looks at the negotiated ALPN protocol; ``Handover.hand_to`` then moves the transport, and the
bytes and end-of-connection seen so far, to the real HTTP/1.1 or HTTP/2 connection object.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from modelmux.upstream.origin import Origin


class Handover(asyncio.Protocol):
    """Holds a fresh TLS transport and what it delivered until the real protocol takes it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._eof = False
        self._lost = False
        self._lost_exc: Exception | None = None
        self._target: asyncio.Protocol | None = None

    @property
    def alpn(self) -> str | None:
        """The protocol the server selected by ALPN, or None when it selected none."""
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        return ssl_object.selected_alpn_protocol() if ssl_object is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:
            self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._pending.append(data)

    def eof_received(self) -> bool | None:
        self._eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost, self._lost_exc = True, exc

    def hand_to(self, protocol: asyncio.Protocol) -> None:
        """Make ``protocol`` the transport's protocol and replay what arrived meanwhile."""
        transport = self.transport
        assert transport is not None and self._target is None
        self._target = protocol
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        for data in self._pending:
            protocol.data_received(data)
        self._pending.clear()
        if self._eof:
            protocol.eof_received()
        if self._lost:
            protocol.connection_lost(self._lost_exc)


async def open_tls(origin: Origin, context: ssl.SSLContext) -> Handover:
    """Connect and complete the TLS handshake (with the context's ALPN offer).

    Raises:
        OSError, ssl.SSLError: as ``loop.create_connection``; the caller maps them.
    """
    loop = asyncio.get_running_loop()
    holder = Handover()
    transport, _ = await loop.create_connection(lambda: holder, origin.host, origin.port,
                                                ssl=context, server_hostname=origin.host)
    holder.connection_made(transport)  # uvloop may return before calling connection_made
    return holder
