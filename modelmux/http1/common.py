"""What every HTTP/1.1 server backend hands the protocol: the request head, sentinels, errors.

Both backends (the fast twin pair in ``modelmux.http1.server`` and the h11 reference in
``modelmux.http1.server_h11``) return these from ``next_event()``: a ``RequestHead``, body pieces
as ``bytes``, ``END`` once the body is complete, ``NEED_DATA`` or ``PAUSED``. Defined once here
and raised by both twins (as aiohttp does), so the protocol catches one error class.
"""

from __future__ import annotations

from http import HTTPStatus


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")
"""More bytes are needed before the next event."""
PAUSED = _Sentinel("PAUSED")
"""The request is complete and more bytes are buffered: the next request waits for this cycle."""
END = _Sentinel("END")
"""The request body is complete."""

BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_UNTIL_CLOSE = range(4)
"""How a response body is framed, as ``parse_response_head`` reports it: none (1xx, 204, 304,
``Content-Length: 0``), Content-Length, chunked, or read until the upstream closes."""

STATUS_LINES: dict[int, bytes] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus
}
"""Pre-encoded status lines (RFC 9110 reason phrases)."""

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HTTP1ProtocolError(Exception):
    """The client sent bytes that are not an acceptable HTTP/1.1 request; answer ``status``, close."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class HTTP1LocalError(Exception):
    """This side asked for something HTTP/1.1 cannot send (a bug, or a header with CR/LF/NUL)."""


class RequestHead:
    """A parsed request head: names lower-cased, values as received (h11's normalisation)."""

    __slots__ = ("method", "target", "http_version", "headers", "content_length", "chunked",
                 "keep_alive", "expect_continue")

    def __init__(self, method: bytes, target: bytes, http_version: bytes,
                 headers: list[tuple[bytes, bytes]], content_length: int | None, chunked: bool,
                 keep_alive: bool, expect_continue: bool) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue

    def __repr__(self) -> str:
        return (f"RequestHead({self.method!r}, {self.target!r}, {self.http_version!r}, "
                f"{self.headers!r})")
