"""TLS termination for the inbound server: one ``SSLContext`` from a certificate and key file.

ALPN offers ``h2`` then ``http/1.1``; the sniffing protocol reads the choice after the handshake.
``CertificateSwitch`` lets a reload put a new certificate in place for new connections. It does
not load client certificates or watch the files for changes.
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


class CertificateSwitch:
    """The listening sockets' context, whose certificate and key a reload can replace.

    Every handshake calls the listening context's SNI callback (with or without a server name in
    the ClientHello), which moves the connection to the newest context; connections already
    open keep the one they were made with. Replacing is one reference swap, after the new
    context loaded completely.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.listener = context
        self.current = context
        context.sni_callback = self._select

    def replace(self, context: ssl.SSLContext) -> None:
        self.current = context

    def _select(self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                context: ssl.SSLContext) -> None:
        current = self.current
        if current is not context:
            connection.context = current
