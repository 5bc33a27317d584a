"""AWS Signature Version 4 for requests with the whole body in hand, sans I/O.

Reference: AWS IAM User Guide, "Create a signed AWS API request" (canonical request, string to
sign, signing key, ``Authorization`` header). Canonical URIs follow the rule for services other
than S3: the path as sent, with dot segments and empty segments removed, percent-encoded once
more (so a model id sent as ``a%3A0`` is signed as ``a%253A0``). botocore's ``SigV4Auth`` is
the reference the tests compare against. ``SigV4Signer`` keeps the derived signing key for one
day, region, service and secret, so a request costs one SHA-256 of the body and three HMACs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit

from modelmux.errors import Headers

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_HEADERS = frozenset({
    "authorization", "baggage", "connection", "expect", "keep-alive", "proxy-authenticate",
    "proxy-authorization", "te", "traceparent", "tracestate", "trailer", "transfer-encoding",
    "upgrade", "user-agent", "x-amzn-trace-id", "content-length",
})
"""Headers left out of the signature: hop-by-hop ones and those proxies or tracing rewrite
(botocore leaves out the same, and content-length is added by the connection)."""


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """One set of AWS keys; ``expires_at`` (Unix seconds) for temporary ones."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expires_at: float | None = None

    def __repr__(self) -> str:  # never the secret, never the token
        return f"AwsCredentials(access_key_id={self.access_key_id!r}, ...)"


def amz_date(now: float) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC, the ``x-amz-date`` form."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def normalize_path(path: str) -> str:
    """RFC 3986 dot-segment removal, and empty segments dropped, as AWS expects."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and segments else ""
    return first + "/".join(segments) + last


def canonical_uri(path: str) -> str:
    """The canonical URI of a path as sent on the wire (already percent-encoded once)."""
    return quote(normalize_path(path), safe="/~")


def canonical_query(query: str) -> str:
    """The query's ``name=value`` pairs sorted by name then value; the query must already be
    percent-encoded the AWS way (``-_.~`` unreserved, everything else ``%XX``)."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_headers(headers: list[tuple[str, str]]) -> tuple[str, str]:
    """(canonical header block with its final newline, signed header names ``a;b;c``)."""
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.strip().lower(), []).append(" ".join(value.split()))
    names = sorted(merged)
    block = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(method: str, path: str, query: str, headers: list[tuple[str, str]],
                      payload_hash: str) -> tuple[str, str]:
    """(the canonical request, the signed header names)."""
    return _canonical(method, canonical_uri(path), canonical_query(query), headers, payload_hash)


def _canonical(method: str, uri: str, query: str, headers: list[tuple[str, str]],
               payload_hash: str) -> tuple[str, str]:
    block, signed = canonical_headers(headers)
    return f"{method.upper()}\n{uri}\n{query}\n{block}\n{signed}\n{payload_hash}", signed


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(timestamp: str, scope: str, request: str) -> str:
    digest = hashlib.sha256(request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """HMAC chain ``AWS4<secret>`` → date → region → service → ``aws4_request``."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode("utf-8"), "sha256")
    return key


def authorization(access_key_id: str, scope: str, signed: str, signature: str) -> str:
    return (f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}")


class SigV4Signer:
    """Signs requests for one region and service; caches the last signing key."""

    __slots__ = ("_key", "_key_for", "region", "service")

    def __init__(self, region: str, service: str) -> None:
        self.region = region
        self.service = service
        self._key = b""
        self._key_for: tuple[str, str] | None = None

    def key(self, secret: str, date: str) -> bytes:
        """The signing key for ``date`` (``YYYYMMDD``), derived once per day and secret."""
        if self._key_for != (date, secret):
            self._key = signing_key(secret, date, self.region, self.service)
            self._key_for = (date, secret)
        return self._key

    def sign(self, method: str, url: str, headers: Headers, body: bytes,
             credentials: AwsCredentials, now: float) -> Headers:
        """``headers`` plus ``host`` (when absent), ``x-amz-date``, ``x-amz-security-token``
        (temporary credentials) and ``authorization``, for sending ``body`` to ``url``."""
        path, query, host = _split(url)
        timestamp = amz_date(now)
        out: Headers = list(headers)
        if not any(name.lower() == b"host" for name, _ in out):
            out.insert(0, (b"host", host))
        out.append((b"x-amz-date", timestamp.encode("ascii")))
        if credentials.session_token:
            out.append((b"x-amz-security-token", credentials.session_token.encode("latin-1")))
        signed_headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in out
                          if name.lower().decode("latin-1") not in UNSIGNED_HEADERS]
        request, signed = _canonical(method, path, query, signed_headers,
                                     hashlib.sha256(body).hexdigest())
        scope = credential_scope(timestamp[:8], self.region, self.service)
        key = self.key(credentials.secret_access_key, timestamp[:8])
        signature = hmac.digest(key, string_to_sign(timestamp, scope, request).encode("utf-8"),
                                "sha256").hex()
        out.append((b"authorization",
                    authorization(credentials.access_key_id, scope, signed, signature).encode()))
        return out


@lru_cache(maxsize=256)
def _split(url: str) -> tuple[str, str, bytes]:
    """(canonical URI, canonical query, host header value) of ``url``; cached, a provider
    signs few URLs."""
    parts = urlsplit(url)
    return (canonical_uri(parts.path), canonical_query(parts.query),
            host_of(url).encode("ascii"))


def host_of(url: str) -> str:
    """The ``host`` value for ``url``: lowercase, the port only when it is not the default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"
