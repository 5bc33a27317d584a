"""TLS termination for the inbound server: one ``SSLContext`` from a certificate and key file.

ALPN offers ``h2`` then ``http/1.1``; the sniffing protocol reads the choice after the handshake.
It does not load client certificates or reload files on change.
"""

from __future__ import annotations

import ssl

ALPN = ["h2", "http/1.1"]


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context (TLS 1.2+, ALPN h2 and http/1.1) for the given PEM files.

    Raises:
        OSError / ssl.SSLError: a file is missing or does not hold a matching cert and key.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(ALPN)
    context.load_cert_chain(cert_file, key_file)
    return context
