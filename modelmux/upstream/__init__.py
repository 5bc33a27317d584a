"""The upstream HTTP client: a per-origin asyncio connection pool on h11 over TCP and TLS.

Providers call ``ConnectionPool.request`` and stream the ``Response``; retry timing comes from
``retry``. HTTP/2 and request signing are not here.
"""

from modelmux.upstream.connection import HTTP11Connection, Origin, ResponseHead
from modelmux.upstream.errors import (
    Phase,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTLSError,
    map_errors,
)
from modelmux.upstream.pool import ConnectionPool, Response, parse_url
from modelmux.upstream.retry import backoff_delay, is_retryable_status, parse_retry_after
from modelmux.upstream.timeouts import Timeouts
from modelmux.upstream.tls import create_ssl_context

__all__ = [
    "ConnectionPool",
    "HTTP11Connection",
    "Origin",
    "Phase",
    "Response",
    "ResponseHead",
    "Timeouts",
    "UpstreamClosed",
    "UpstreamConnectError",
    "UpstreamProtocolError",
    "UpstreamTLSError",
    "UpstreamTimeout",
    "backoff_delay",
    "create_ssl_context",
    "is_retryable_status",
    "map_errors",
    "parse_retry_after",
    "parse_url",
]
