"""Pure-Python twin of ``modelmux._speedups.http1``: a sans-I/O HTTP/1.1 server connection.

Parses request heads and bodies (Content-Length or chunked, RFC 9112 sections 2-7) and frames
responses (Content-Length, chunked, or close-delimited for HTTP/1.0). It accepts exactly what
h11 0.16 accepts, bare-LF line ends included, except that it is stricter in three places that
are request-smuggling vectors (RFC 9112 sections 5.2 and 6.1, 2.3): obs-fold continuation lines,
a request with both Content-Length and Transfer-Encoding, and versions other than 1.0 and 1.1.
Whole-block regular expressions do the validation, so no Python code runs per header byte.
"""

from __future__ import annotations

import re

from modelmux.http1.common import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    BODY_UNTIL_CLOSE,
    CONTINUE,
    END,
    NEED_DATA,
    PAUSED,
    STATUS_LINES,
    HTTP1LocalError,
    HTTP1ProtocolError,
    RequestHead,
)

__all__ = ["ServerConnection"]

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VALUE = rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"  # h11's field-value: no NUL, CR, LF, VT, FF
_HEAD_END = re.compile(rb"\n\r?\n")
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])\r?\n")
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")[ \t]*\r?\n")
_FIELDS = re.compile(rb"(?:" + _TOKEN + rb":[ \t]*" + _VALUE + rb"[ \t]*\r?\n)*")
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([\t \x21-\x7e\x80-\xff]*))?\r?\n")
_CHUNK_HEAD = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_DIGITS = re.compile(rb"[0-9]{1,20}")

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _DONE, _ERROR = range(8)
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


def _comma_tokens(value: bytes) -> list[bytes]:
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
    found = _HEAD_END.search(buf)
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
            close = close or b"close" in _comma_tokens(value)
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
            close = close or b"close" in _comma_tokens(value)
        elif name == b"expect":
            expect = expect or b"100-continue" in _comma_tokens(value)
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


class ServerConnection:
    """One client connection's HTTP/1.1 state: feed bytes, take events, frame the response.

    ``next_event()`` returns a ``RequestHead``, body ``bytes``, ``END``, ``NEED_DATA`` or
    ``PAUSED`` (the next request is buffered until ``start_next_cycle()``). After an
    ``HTTP1ProtocolError`` every later call raises it again.
    """

    def __init__(self, max_head: int = 65536) -> None:
        self.max_head = max_head
        self._buf = b""
        self._state = _HEAD
        self._remaining = 0
        self._discard = b""
        self._error: HTTP1ProtocolError | None = None
        self._head_request = False
        self._http10 = True  # until a request says otherwise (an early error goes to 1.0 rules)
        self._mode = _NO_BODY
        self.keep_alive = True
        self.waiting_for_continue = False
        self.response_started = False
        self.response_complete = False

    @property
    def trailing(self) -> bytes:
        """Bytes received and not consumed yet (the next request, or what follows an upgrade)."""
        return self._buf

    @property
    def in_body(self) -> bool:
        """A request head was received and its body is not complete."""
        return _BODY <= self._state <= _TRAILER

    @property
    def request_complete(self) -> bool:
        return self._state == _DONE

    def reusable(self) -> bool:
        """Request and response are both complete and the connection may carry another."""
        return self._state == _DONE and self.response_complete and self.keep_alive

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def start_next_cycle(self) -> None:
        """Reset for the next request on a ``reusable()`` connection.

        Raises:
            HTTP1LocalError: the current request or response is not complete.
        """
        if not self.reusable():
            raise HTTP1LocalError("the connection cannot start another request")
        self._state = _HEAD
        self._http10 = True
        self.response_started = self.response_complete = self.waiting_for_continue = False

    def _fail(self, message: str, status: int = 400) -> HTTP1ProtocolError:
        self._state = _ERROR
        self._error = HTTP1ProtocolError(message, status)
        return self._error

    def next_event(self) -> object:
        """The next event from the bytes received so far.

        Raises:
            HTTP1ProtocolError: the bytes are not an acceptable request (``status`` says which).
        """
        state = self._state
        buf = self._buf
        if state == _HEAD:
            if not buf:
                return NEED_DATA
            if buf[0] < 0x21:
                raise self._fail("illegal request line")
            found = _HEAD_END.search(buf)
            if found is None:
                if len(buf) > self.max_head:
                    raise self._fail(f"request head is larger than {self.max_head} bytes", 431)
                return NEED_DATA
            end = found.end()
            if end > self.max_head:
                raise self._fail(f"request head is larger than {self.max_head} bytes", 431)
            try:
                head = parse_head(buf, end)
            except HTTP1ProtocolError as exc:
                self._state, self._error = _ERROR, exc
                raise
            self._buf = buf[end:]
            self._head_request = head.method == b"HEAD"
            self._http10 = head.http_version == b"1.0"
            self.keep_alive = head.keep_alive
            self.waiting_for_continue = head.expect_continue
            if head.chunked:
                self._state = _CHUNK_SIZE
            else:
                self._state = _BODY
                self._remaining = head.content_length or 0
            return head
        if state == _BODY:
            remaining = self._remaining
            if remaining == 0:
                self._state = _DONE
                self.waiting_for_continue = False
                return END
            if not buf:
                return NEED_DATA
            self.waiting_for_continue = False
            if len(buf) <= remaining:
                self._buf = b""
                self._remaining = remaining - len(buf)
                return buf
            self._buf = buf[remaining:]
            self._remaining = 0
            return buf[:remaining]
        if state == _DONE:
            return PAUSED if buf else NEED_DATA
        if state == _ERROR:
            assert self._error is not None
            raise self._error
        return self._chunked()

    def _chunked(self) -> object:
        while True:
            state, buf = self._state, self._buf
            if not buf:
                return NEED_DATA
            self.waiting_for_continue = False
            if state == _CHUNK_SIZE:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return self._need_more()
                found = _CHUNK_HEAD.fullmatch(buf, 0, eol + 2)
                if found is None:
                    raise self._fail("illegal chunk header")
                self._buf = buf[eol + 2:]
                self._remaining = int(found.group(1), 16)
                self._state = _CHUNK_DATA if self._remaining else _TRAILER
            elif state == _CHUNK_DATA:
                remaining = self._remaining
                if len(buf) < remaining:
                    self._buf = b""
                    self._remaining = remaining - len(buf)
                    return buf
                self._buf = buf[remaining:]
                self._state, self._discard = _CHUNK_CRLF, b"\r\n"
                return buf[:remaining] if len(buf) > remaining else buf
            elif state == _CHUNK_CRLF:
                want = self._discard
                got = buf[:len(want)]
                if got != want[:len(got)]:
                    raise self._fail("malformed chunk footer")
                self._buf = buf[len(got):]
                self._discard = want[len(got):]
                if not self._discard:
                    self._state = _CHUNK_SIZE
            else:  # _TRAILER: header lines up to a blank line, validated and dropped
                end = trailer_end(buf)
                if end < 0:
                    raise self._fail("illegal trailer line")
                if not end:
                    return self._need_more()
                self._buf = buf[end:]
                self._state = _DONE
                return END

    def _need_more(self) -> object:
        if len(self._buf) > self.max_head:
            raise self._fail("chunk header or trailer is too long", 431)
        return NEED_DATA

    def send_response(self, status: int, headers: list[tuple[bytes, bytes]], *, end: bool,
                      body: bytes = b"") -> bytes:
        """The bytes of a response head (and its whole ``body`` when ``end``).

        Without a Content-Length the body is chunked, or close-delimited for an HTTP/1.0 client;
        ``connection: close`` is added when the connection will not be reused.

        Raises:
            HTTP1LocalError: a response was already started, or a header is not bytes or holds
                CR, LF or NUL.
        """
        if self.response_started:
            raise HTTP1LocalError("a response was already sent for this request")
        self.response_started = True
        self.waiting_for_continue = False
        sized = closing = False
        for name, value in headers:
            if type(name) is not bytes or type(value) is not bytes:
                raise HTTP1LocalError(f"response header {(name, value)!r} is not a pair of bytes")
            if name == b"content-length":
                sized = True
            elif name == b"connection" and b"close" in _comma_tokens(value):
                closing = True
        if self._head_request or status in (204, 304):
            mode = _NO_BODY
        elif sized:
            mode = _LENGTH
        elif self._http10:
            mode = _UNTIL_CLOSE
            self.keep_alive = False
        else:
            mode = _CHUNKED
        if not sized and not self._http10 and status not in (204, 304):
            headers = [*headers, (b"transfer-encoding", b"chunked")]
        if closing:
            self.keep_alive = False
        elif not self.keep_alive:
            headers = [*headers, (b"connection", b"close")]
        self._mode = mode
        line = STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status
        head = b"".join([line, *[b"%s: %s\r\n" % pair for pair in headers], b"\r\n"])
        lines = len(headers) + 2
        if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\x00" in head:
            raise HTTP1LocalError(f"illegal response header in {headers!r}")
        if not end:
            return head
        self.response_complete = True
        if mode == _NO_BODY or not body:
            return head
        if mode == _CHUNKED:
            return b"%s%x\r\n%s\r\n0\r\n\r\n" % (head, len(body), body)
        return head + body

    def send_data(self, data: bytes) -> bytes:
        """The bytes that carry ``data`` in the response body (chunk framing when chunked)."""
        mode = self._mode
        if not data or mode == _NO_BODY:
            return b""
        if mode == _CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data)
        return data

    def send_end(self) -> bytes:
        """The bytes that end the response body."""
        self.response_complete = True
        return b"0\r\n\r\n" if self._mode == _CHUNKED else b""

    def send_continue(self) -> bytes:
        """``100 Continue`` if the client waits for it before sending the body, else ``b""``."""
        if self.waiting_for_continue and not self.response_started:
            self.waiting_for_continue = False
            return CONTINUE
        return b""
