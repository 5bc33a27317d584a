"""What a connection protocol sees of the server that accepted it, and what it shares with the
other protocols: the ``Date`` header cache.

``h1``, ``h2``, ``h2_stream`` and ``sniff`` depend on the ``Host`` interface, not on
``lifecycle.Server`` (which builds them), so the server package imports in one direction.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from modelmux.config.settings import H2Settings, ServerLimits
    from modelmux.http1.common import RequestHead
    from modelmux.http1.server import HTTP1Backend
    from modelmux.server.exchange import Handler


class Connection(Protocol):
    """What the server asks of every open connection, whatever its protocol."""

    def retire(self, grace: float) -> None: ...
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...


class Host(Protocol):
    """The server as its connections see it: settings, the handler, the connection set."""

    handler: Handler
    limits: ServerLimits
    http1: type[HTTP1Backend]
    http2: H2Settings
    connections: set[Connection]
    draining: bool
    handover_grace: float | None

    def upgrade_h2c(self, protocol: Any, event: RequestHead) -> bool: ...
    def connection_lost(self, protocol: Connection) -> None: ...


class DateCache:
    """The HTTP ``Date`` header value, formatted once per second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


http_date = DateCache()
