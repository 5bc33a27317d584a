"""The HTTP/1.1 head grammar both roles share, pure Python: request and response heads,
trailer sections and Content-Length (RFC 9112 sections 2-7), as h11 0.16 accepts them but
stricter on obs-fold, Content-Length with Transfer-Encoding, and versions other than 1.x.

Part of the pure twins (``_server_py`` re-exports its parsers, ``_client_py`` reads responses
with it); the native server twin has its own scanner. Whole-block regular expressions do the
validation, so no Python code runs per header byte.
"""

from __future__ import annotations

import re

from modelmux.http1.common import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    BODY_UNTIL_CLOSE,
    HTTP1ProtocolError,
    RequestHead,
)

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VALUE = rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"  # h11's field-value: no NUL, CR, LF, VT, FF
HEAD_END = re.compile(rb"\n\r?\n")
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])\r?\n")
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")[ \t]*\r?\n")
_FIELDS = re.compile(rb"(?:" + _TOKEN + rb":[ \t]*" + _VALUE + rb"[ \t]*\r?\n)*")
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([\t \x21-\x7e\x80-\xff]*))?\r?\n")
CHUNK_HEAD = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_DIGITS = re.compile(rb"[0-9]{1,20}")


def comma_tokens(value: bytes) -> list[bytes]:
    """The lower-cased, non-empty tokens of a comma-separated field value."""
    return [t for t in (p.strip() for p in value.lower().split(b",")) if t]


def content_length(value: bytes, seen: bytes | None) -> bytes | None:
    """A Content-Length field's value checked against one ``seen`` before; None: an equal repeat.

    Raises:
        HTTP1ProtocolError: not digits, a list of differing values, or differing fields.
    """
    lengths = {v.strip() for v in value.split(b",")}
    value = lengths.pop()
    if lengths or _DIGITS.fullmatch(value) is None:
        raise HTTP1ProtocolError("bad or conflicting Content-Length")
    if seen is None:
        return value
    if value != seen:
        raise HTTP1ProtocolError("conflicting Content-Length headers")
    return None


def trailer_end(buf: bytes) -> int:
    """Where the trailer section opening ``buf`` ends (past its blank line); 0: not all here yet,
    -1: an illegal trailer line. The lines themselves are dropped."""
    if buf[:1] == b"\n" or buf[:2] == b"\r\n":
        return 1 if buf[0] == 10 else 2
    found = HEAD_END.search(buf)
    if found is None:
        return 0
    end = found.end()
    stop = end - 2 if buf[end - 2] == 13 else end - 1
    return end if _FIELDS.fullmatch(buf, 0, stop) is not None else -1


def parse_response_head(buf: bytes, end: int) -> tuple[int, list[tuple[bytes, bytes]], bytes,
                                                       bool, int, int]:
    """Decode a response head ``buf[:end]`` (the upstream client's side of the same grammar).

    Returns status, headers (names lower-cased), reason, keep-alive, body framing (``BODY_*``
    from ``common``) and the Content-Length (0 unless ``BODY_LENGTH``).

    Raises:
        HTTP1ProtocolError: not a valid head, or framing an upstream could use to desync us.
    """
    line = _STATUS_LINE.match(buf)
    if line is None or line.end() > end:
        raise HTTP1ProtocolError("illegal status line")
    version, status_text, reason = line.groups()
    start, stop = line.end(), end - 2 if buf[end - 2] == 13 else end - 1
    if _FIELDS.fullmatch(buf, start, stop) is None:
        raise HTTP1ProtocolError("illegal header line (obs-fold, bad name or value)")
    headers: list[tuple[bytes, bytes]] = []
    length: bytes | None = None
    chunked = close = False
    for raw, value in _FIELD.findall(buf, start, stop):
        name = raw.lower()
        if name == b"content-length":
            checked = content_length(value, length)
            if checked is None:
                continue
            length = value = checked
        elif name == b"transfer-encoding":
            if chunked or value.lower() != b"chunked":
                raise HTTP1ProtocolError("only one Transfer-Encoding: chunked is supported")
            chunked = True
        elif name == b"connection":
            close = close or b"close" in comma_tokens(value)
        headers.append((name, value))
    if chunked and length is not None:
        raise HTTP1ProtocolError("both Content-Length and Transfer-Encoding")
    status = int(status_text)
    keep_alive = version == b"1.1" and not close
    reason = reason or b""
    if status < 200 or status in (204, 304):
        return status, headers, reason, keep_alive, BODY_NONE, 0
    if chunked:
        return status, headers, reason, keep_alive, BODY_CHUNKED, 0
    if length is not None:
        size = int(length)
        return status, headers, reason, keep_alive, BODY_LENGTH if size else BODY_NONE, size
    return status, headers, reason, False, BODY_UNTIL_CLOSE, 0


def parse_head(buf: bytes, end: int) -> RequestHead:
    """Validate and decode the request head ``buf[:end]`` (``end`` is past the blank line).

    Raises:
        HTTP1ProtocolError: not a valid head (400), a version other than 1.x (505), or a
            Transfer-Encoding other than chunked (501).
    """
    line = _REQUEST_LINE.match(buf)
    if line is None or line.end() > end:
        raise HTTP1ProtocolError("illegal request line")
    method, target, version = line.groups()
    if version != b"1.1" and version != b"1.0":
        raise HTTP1ProtocolError(f"unsupported HTTP version {version.decode()}", 505)
    start, stop = line.end(), end - 2 if buf[end - 2] == 13 else end - 1
    if _FIELDS.fullmatch(buf, start, stop) is None:
        raise HTTP1ProtocolError("illegal header line (obs-fold, bad name or value)")
    headers: list[tuple[bytes, bytes]] = []
    length: bytes | None = None
    chunked = close = expect = False
    hosts = 0
    for raw, value in _FIELD.findall(buf, start, stop):
        name = raw.lower()
        if name == b"content-length":
            checked = content_length(value, length)
            if checked is None:
                continue  # a repeated equal Content-Length is kept once, as h11 does
            length = value = checked
        elif name == b"transfer-encoding":
            if chunked:
                raise HTTP1ProtocolError("multiple Transfer-Encoding headers", 501)
            value = value.lower()
            if value != b"chunked":
                raise HTTP1ProtocolError("only Transfer-Encoding: chunked is supported", 501)
            chunked = True
        elif name == b"host":
            hosts += 1
        elif name == b"connection":
            close = close or b"close" in comma_tokens(value)
        elif name == b"expect":
            expect = expect or b"100-continue" in comma_tokens(value)
        headers.append((name, value))
    if chunked and length is not None:
        raise HTTP1ProtocolError("both Content-Length and Transfer-Encoding")
    if hosts > 1:
        raise HTTP1ProtocolError("multiple Host headers")
    if hosts == 0 and version == b"1.1":
        raise HTTP1ProtocolError("missing Host header")
    modern = version == b"1.1"
    return RequestHead(method, target, version, headers, None if length is None else int(length),
                       chunked, modern and not close, modern and expect)
