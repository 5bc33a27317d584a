"""TLS client contexts for upstream connections.

Verification is always on: a CA store (the system one, or ``cafile`` alone), hostname checks,
TLS 1.2 or newer. SNI is sent by the connection via ``server_hostname``; ALPN offers http/1.1.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence


def create_ssl_context(
    *,
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    alpn: Sequence[str] = ("http/1.1",),
) -> ssl.SSLContext:
    """A verifying client context; ``cafile`` replaces the system CA store when given.

    Build it once and share it: loading a CA store costs milliseconds. ``certfile``/``keyfile``
    add a client certificate for upstreams that want mutual TLS.

    Raises:
        OSError, ssl.SSLError: a file is missing or does not hold what it should.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        ctx.load_cert_chain(certfile, keyfile)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx
