"""What a request needs before a connection sends it: its URL's origin and target, Host, Content-Length.

Shared by the pool's ``request`` and by callers that send on a lent connection themselves.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from modelmux.errors import Headers
from modelmux.upstream.origin import Origin

__all__ = ["parse_url", "request_headers"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


@lru_cache(maxsize=1024)
def parse_url(url: str) -> tuple[Origin, bytes]:
    """Split an absolute http(s) URL into its origin and request target (path?query).

    Cached: providers send to the few URLs their config names, and ``urlsplit`` is a few
    microseconds per request otherwise.

    Raises:
        ValueError: not an absolute http or https URL, or a bad port.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or _DEFAULT_PORTS[scheme]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Origin(scheme, host, port), target.encode("ascii")


@lru_cache(maxsize=1024)
def _host(origin: Origin) -> bytes:
    """``origin.authority_bytes``, worked out once per origin rather than per request."""
    return origin.authority_bytes


def request_headers(method: bytes, headers: Headers, origin: Origin, body: bytes) -> Headers:
    """``headers`` plus Host and Content-Length when the caller did not set them."""
    has_host = has_length = False
    for name, _ in headers:
        lname = name.lower()
        if lname == b"host":
            has_host = True
        elif lname == b"content-length" or lname == b"transfer-encoding":
            has_length = True
    out = list(headers) if has_host else [(b"host", _host(origin)), *headers]
    if not has_length and (body or method.upper() in _BODY_METHODS):
        out.append((b"content-length", b"%d" % len(body)))
    return out
