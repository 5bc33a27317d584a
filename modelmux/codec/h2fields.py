"""Outgoing HTTP/2 fields from HTTP/1.1-style headers: the one filter both sides share.

RFC 9113 section 8.2.2: an HTTP/2 message carries no connection-specific field (Connection,
Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade); TE may appear in a request, and only
as "trailers". Host gives way to :authority (section 8.3.1). Names go out lower-case.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelmux.errors import Headers

_CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                                  b"transfer-encoding", b"upgrade", b"host"})


def h2_fields(headers: Iterable[tuple[bytes, bytes]], *, request: bool) -> Headers:
    """``headers`` lower-cased, connection-specific ones dropped; TE kept only as
    "trailers" in a ``request``."""
    out: Headers = []
    for name, value in headers:
        name = name.lower()
        if name == b"te":
            if request and value.strip().lower() == b"trailers":
                out.append((name, value))
        elif name not in _CONNECTION_SPECIFIC:
            out.append((name, value))
    return out
