"""TLS to a loopback server whose throwaway CA and certificate are made at test time.

Proves verification (CA, hostname), SNI, ALPN, reuse over TLS and the connect timeout.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelmux.upstream import (
    ConnectionPool,
    Timeouts,
    UpstreamTimeout,
    UpstreamTLSError,
    create_ssl_context,
)
from tests.upstream import HTTPServer, on_loops, run


@dataclass
class PKI:
    cafile: str
    certfile: str
    keyfile: str

    def server_context(self, seen_sni: list[str | None]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        ctx.set_alpn_protocols(["http/1.1"])

        def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            seen_sni.append(name)

        ctx.sni_callback = record_sni  # type: ignore[assignment]
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return create_ssl_context(cafile=self.cafile)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A CA and a server certificate for DNS name ``localhost`` only (no IP address SAN)."""
    path: Path = tmp_path_factory.mktemp("pki")
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ModelMux Test CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        _builder(name, ca_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (path / "server.pem").write_bytes(cert.public_bytes(pem))
    (path / "server.key").write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return PKI(str(path / "ca.pem"), str(path / "server.pem"), str(path / "server.key"))


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@on_loops
def test_private_ca_sni_alpn_and_reuse(loop: str, pki: PKI) -> None:
    async def main() -> None:
        sni: list[str | None] = []
        async with HTTPServer(ssl_context=pki.server_context(sni)) as server:
            async with ConnectionPool(ssl_context_factory=pki.client_context) as pool:
                for _ in range(2):
                    resp = await pool.request(b"GET", server.url(host="localhost"), [])
                    assert resp.status == 200 and await resp.read() == b"hello"
                assert pool.stats()[f"https://localhost:{server.port}"]["idle"] == 1
        assert sni == ["localhost"]
        assert server.alpn == ["http/1.1"]
        assert len(server.ports) == 1 and len(server.requests) == 2
        assert server.requests[0].header(b"host") == f"localhost:{server.port}".encode()

    run(loop, main())


@on_loops
def test_wrong_hostname_fails(loop: str, pki: PKI) -> None:
    async def main() -> None:
        async with HTTPServer(ssl_context=pki.server_context([])) as server:
            async with ConnectionPool(ssl_context_factory=pki.client_context) as pool:
                with pytest.raises(UpstreamTLSError) as info:
                    await pool.request(b"GET", server.url(host="127.0.0.1"), [])
                assert info.value.status == 502 and info.value.code == "upstream_tls_error"
                assert "127.0.0.1" in info.value.message
                assert pool.stats() == {}
        assert server.requests == []

    run(loop, main())


@on_loops
def test_untrusted_ca_fails(loop: str, pki: PKI) -> None:
    async def main() -> None:
        async with HTTPServer(ssl_context=pki.server_context([])) as server:
            async with ConnectionPool() as pool:  # system CA store: our CA is not in it
                with pytest.raises(UpstreamTLSError, match="verif"):
                    await pool.request(b"GET", server.url(host="localhost"), [])
                assert pool.stats() == {}

    run(loop, main())


@on_loops
def test_stalled_handshake_is_a_connect_timeout(loop: str, pki: PKI) -> None:
    async def main() -> None:
        with socket.socket() as listener:  # accepts TCP in the backlog, never speaks TLS
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            port = listener.getsockname()[1]
            async with ConnectionPool(ssl_context_factory=pki.client_context) as pool:
                with pytest.raises(UpstreamTimeout) as info:
                    await pool.request(
                        b"GET", f"https://localhost:{port}/", [], timeouts=Timeouts(connect=0.2)
                    )
                assert info.value.phase == "connect" and info.value.status == 504
                assert pool.stats() == {}

    run(loop, main())


def test_context_verifies_by_default(pki: PKI) -> None:
    for ctx in (create_ssl_context(), create_ssl_context(cafile=pki.cafile)):
        assert ctx.check_hostname is True
        assert ctx.verify_mode is ssl.CERT_REQUIRED
        assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
