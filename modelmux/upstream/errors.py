"""The upstream client's exception families and the one place foreign errors become them.

Connect, TLS, protocol and mid-response close errors are 502s (``UpstreamError`` family, one code
each); timeouts are 504s (``modelmux.errors.UpstreamTimeout`` family) tagged with the phase that
ran out. ``map_errors`` translates OSError/ssl/h11/h2/fast-parser/TimeoutError where the library
calls out.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import h11
import h2.exceptions

from modelmux import errors
from modelmux.server.http1_common import HTTP1LocalError, HTTP1ProtocolError

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


@contextmanager
def map_errors(phase: Phase, origin: str) -> Iterator[None]:
    """Translate foreign exceptions raised inside the block into the upstream families.

    Raises:
        UpstreamTimeout, UpstreamTLSError, UpstreamConnectError, UpstreamProtocolError,
        UpstreamClosed, StreamRefused: in place of TimeoutError, ssl.SSLError, OSError, h11 or
        h2 errors.
    """
    try:
        yield
    except errors.ModelMuxError:
        raise
    except TimeoutError as exc:  # before OSError: TimeoutError is an OSError
        raise UpstreamTimeout(f"{origin}: timed out {_PHASE_TEXT[phase]}", phase=phase) from exc
    except ssl.SSLCertVerificationError as exc:
        raise UpstreamTLSError(
            f"{origin}: certificate verification failed: {exc.verify_message}"
        ) from exc
    except ssl.SSLError as exc:
        if phase == "connect":
            raise UpstreamTLSError(f"{origin}: TLS handshake failed: {exc}") from exc
        raise UpstreamProtocolError(f"{origin}: TLS error: {exc}") from exc
    except (h11.RemoteProtocolError, HTTP1ProtocolError) as exc:
        raise UpstreamProtocolError(f"{origin}: malformed response: {exc}") from exc
    except (h11.LocalProtocolError, HTTP1LocalError) as exc:
        raise UpstreamProtocolError(f"{origin}: request cannot be sent: {exc}") from exc
    except h2.exceptions.TooManyStreamsError as exc:  # the peer lowered its limit meanwhile
        raise StreamRefused(f"{origin}: no stream available: {exc}") from exc
    except h2.exceptions.ProtocolError as exc:
        raise UpstreamProtocolError(f"{origin}: HTTP/2 protocol error: {exc}") from exc
    except OSError as exc:
        if phase == "connect":
            raise UpstreamConnectError(f"{origin}: cannot connect: {exc}") from exc
        raise UpstreamClosed(f"{origin}: connection lost: {exc}") from exc
