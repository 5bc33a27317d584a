"""HTTP/2 test tools: a throwaway CA and server certificate, and a raw ``h2`` client on a socket."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from modelmux.config.settings import H2Settings
from modelmux.config.settings import ServerLimits
from modelmux.server.exchange import Handler
from modelmux.server.lifecycle import Server
from tests.server.helpers import DEADLINE


def make_certs(directory: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """Write a server cert and key for 127.0.0.1 signed by a new CA; returns (cert, key, client ctx)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelmux test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    client = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    client.set_alpn_protocols(["h2", "http/1.1"])
    return cert_file, key_file, client


class RawH2:
    """A bare HTTP/2 client connection (prior knowledge) for frame-level tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: h2.connection.H2Connection) -> None:
        self.reader, self.writer, self.conn = reader, writer, conn
        self.events: list[h2.events.Event] = []

    @classmethod
    async def open(cls, port: int, **settings: int) -> RawH2:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), DEADLINE)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                    header_encoding=None))
        conn.initiate_connection()
        if settings:
            conn.update_settings(settings)
        self = cls(reader, writer, conn)
        self.flush()
        return self

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    def request(self, path: str = "/", *, method: str = "GET", end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":path", path), (":scheme", "http"),
                                     (":authority", "t")], end_stream=end)
        return sid

    async def read_until(self, kind: type, stream_id: int | None = None) -> h2.events.Event | None:
        """Read until an event of ``kind`` (for ``stream_id`` if given); None on EOF."""
        async def loop() -> h2.events.Event | None:
            while True:
                for i, event in enumerate(self.events):
                    if isinstance(event, kind) and (stream_id is None
                                                    or getattr(event, "stream_id", None) == stream_id):
                        del self.events[:i + 1]
                        return event
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.events.extend(self.conn.receive_data(data))
                self.flush()
        return await asyncio.wait_for(loop(), DEADLINE)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


@contextlib.asynccontextmanager
async def serving(handler: Handler, *, ssl_context: ssl.SSLContext | None = None,
                  http2: H2Settings | None = None, **limits: Any) -> AsyncIterator[tuple[Server, int]]:
    """A real ``Server`` (optionally TLS, custom HTTP/2 settings) on a loopback port."""
    server = Server(handler, ServerLimits(**limits), ssl_context=ssl_context, http2=http2)
    (_, port), *_ = await server.listen("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.shutdown()
