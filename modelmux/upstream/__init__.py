"""The upstream HTTP client: a per-origin asyncio connection pool, HTTP/1.1 (h11) and HTTP/2 (h2).

Providers call ``ConnectionPool.request`` and stream the ``Response``; retry timing comes from
``retry``. Request signing is not here.
"""

from modelmux.config.settings import Timeouts
from modelmux.upstream.connection import HTTP11Connection
from modelmux.upstream.errors import (
    Phase,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTLSError,
    map_errors,
)
from modelmux.upstream.h2connection import HTTP2Connection
from modelmux.upstream.h2stream import StreamRefused
from modelmux.upstream.origin import Origin, ResponseHead
from modelmux.upstream.pool import ConnectionPool
from modelmux.upstream.prepare import parse_url
from modelmux.upstream.response import Response
from modelmux.upstream.retry import backoff_delay, is_retryable_status, parse_retry_after
from modelmux.upstream.tls import create_ssl_context

__all__ = [
    "ConnectionPool",
    "HTTP2Connection",
    "HTTP11Connection",
    "Origin",
    "Phase",
    "Response",
    "ResponseHead",
    "StreamRefused",
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
