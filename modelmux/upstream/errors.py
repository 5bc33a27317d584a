"""The upstream client's exception families and the one place foreign errors become them.

Connect, TLS, protocol and mid-response close errors are 502s (``UpstreamError`` family, one code
each); timeouts are 504s (``modelmux.errors.UpstreamTimeout`` family) tagged with the phase that
ran out. ``map_errors`` translates OSError/ssl/h11/h2/fast-parser/TimeoutError where the library
calls out.
"""

from __future__ import annotations

import ssl
from typing import Literal

import h2.exceptions
import h11

from modelmux import errors
from modelmux.http1.common import HTTP1LocalError, HTTP1ProtocolError

Phase = Literal["connect", "first_byte", "read", "pool"]

_PHASE_TEXT: dict[str, str] = {
    "connect": "connecting",
    "first_byte": "waiting for the response head",
    "read": "waiting for the response body",
    "pool": "waiting for a free connection",
}


class UpstreamConnectError(errors.UpstreamError):
    """No connection could be made (DNS, refused, unreachable, pool closed)."""

    code = "upstream_connect_error"


class UpstreamTLSError(UpstreamConnectError):
    """The TLS handshake failed: untrusted certificate, wrong hostname, no shared protocol."""

    code = "upstream_tls_error"


class UpstreamProtocolError(errors.UpstreamError):
    """The upstream spoke malformed HTTP (or the request could not be framed)."""

    code = "upstream_protocol_error"


class UpstreamClosed(errors.UpstreamError):
    """The upstream closed or reset the connection before the response was complete."""

    code = "upstream_closed"


class StreamRefused(UpstreamClosed):
    """The peer refused the stream (GOAWAY past it, REFUSED_STREAM, or its stream limit was lowered
    before ours opened): nothing of it was processed, so it is safe to retry elsewhere."""

    code = "upstream_stream_refused"


class UpstreamTimeout(errors.UpstreamTimeout):
    """A timeout ran out; ``phase`` says which: connect, first_byte, read or pool."""

    def __init__(self, message: str, *, phase: Phase, code: str | None = None) -> None:
        super().__init__(message, code=code or f"upstream_{phase}_timeout")
        self.phase: Phase = phase


def map_errors(phase: Phase, origin: object) -> ErrorMap:
    """Translate foreign exceptions raised inside the ``with`` block into the upstream families.

    ``origin`` names the upstream in messages; it is formatted only when an error is mapped.

    Raises:
        UpstreamTimeout, UpstreamTLSError, UpstreamConnectError, UpstreamProtocolError,
        UpstreamClosed, StreamRefused: in place of TimeoutError, ssl.SSLError, OSError, h11 or
        h2 errors.
    """
    return ErrorMap(phase, origin)


class ErrorMap:
    """The context manager ``map_errors`` returns: a plain class, since the request path
    enters three per upstream call and a generator-based one costs several times more."""

    __slots__ = ("origin", "phase")

    def __init__(self, phase: Phase, origin: object) -> None:
        self.phase = phase
        self.origin = origin

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None and isinstance(exc, Exception):
            raise_mapped(exc, self.phase, self.origin)


def raise_mapped(exc: Exception, phase: Phase, origin: object) -> None:
    """What ``map_errors`` does, for an ``except Exception`` clause to call before its bare
    ``raise``: a ``try`` costs nothing until something is raised, where a ``with`` costs four
    calls on every upstream request.

    Raises:
        the upstream error ``exc`` stands for (from ``exc``); returns when it is already a
        ``ModelMuxError`` or is not mapped.
    """
    if isinstance(exc, errors.ModelMuxError):
        return
    mapped = _mapped(exc, phase, str(origin))
    if mapped is not None:
        raise mapped from exc


def _mapped(exc: Exception, phase: Phase, origin: str) -> errors.ModelMuxError | None:
    """The upstream error ``exc`` stands for, or None to let it through unchanged."""
    if isinstance(exc, TimeoutError):  # before OSError: TimeoutError is an OSError
        return UpstreamTimeout(f"{origin}: timed out {_PHASE_TEXT[phase]}", phase=phase)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return UpstreamTLSError(f"{origin}: certificate verification failed: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        if phase == "connect":
            return UpstreamTLSError(f"{origin}: TLS handshake failed: {exc}")
        return UpstreamProtocolError(f"{origin}: TLS error: {exc}")
    if isinstance(exc, (h11.RemoteProtocolError, HTTP1ProtocolError)):
        return UpstreamProtocolError(f"{origin}: malformed response: {exc}")
    if isinstance(exc, (h11.LocalProtocolError, HTTP1LocalError)):
        return UpstreamProtocolError(f"{origin}: request cannot be sent: {exc}")
    if isinstance(exc, h2.exceptions.TooManyStreamsError):  # the peer lowered its limit meanwhile
        return StreamRefused(f"{origin}: no stream available: {exc}")
    if isinstance(exc, h2.exceptions.ProtocolError):
        return UpstreamProtocolError(f"{origin}: HTTP/2 protocol error: {exc}")
    if isinstance(exc, OSError):
        if phase == "connect":
            return UpstreamConnectError(f"{origin}: cannot connect: {exc}")
        return UpstreamClosed(f"{origin}: connection lost: {exc}")
    return None
