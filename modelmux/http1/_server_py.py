"""Pure-Python twin of ``modelmux._speedups.http1``: a sans-I/O HTTP/1.1 server connection.

Parses request heads and bodies (Content-Length or chunked, RFC 9112 sections 2-7) and frames
responses (Content-Length, chunked, or close-delimited for HTTP/1.0). It accepts exactly what
h11 0.16 accepts, bare-LF line ends included, except that it is stricter in three places that
are request-smuggling vectors (RFC 9112 sections 5.2 and 6.1, 2.3): obs-fold continuation lines,
a request with both Content-Length and Transfer-Encoding, and versions other than 1.0 and 1.1.
Heads are read by ``_head_py`` (the grammar the client twin shares); its parsers are
re-exported here, where the native twin defines them too.
"""

from __future__ import annotations

from modelmux.http1._head_py import (
    CHUNK_HEAD,
    HEAD_END,
    comma_tokens,
    content_length,
    parse_head,
    trailer_end,
)
from modelmux.http1.common import (
    CONTINUE,
    END,
    NEED_DATA,
    PAUSED,
    STATUS_LINES,
    HTTP1LocalError,
    HTTP1ProtocolError,
)

__all__ = ["ServerConnection", "content_length", "parse_head", "trailer_end"]

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _DONE, _ERROR = range(8)
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


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
            found = HEAD_END.search(buf)
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
                found = CHUNK_HEAD.fullmatch(buf, 0, eol + 2)
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
            elif name == b"connection" and b"close" in comma_tokens(value):
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
