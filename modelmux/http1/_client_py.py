"""Pure-Python twin of ``modelmux._speedups.http1_client``: a sans-I/O HTTP/1.1 client connection.

Frames one request at a time (head plus a Content-Length body) and parses the response: the
head (RFC 9112 section 4; 1xx informational heads are skipped), then a Content-Length, chunked
(trailers validated and dropped) or read-until-close body (section 6.3). It is stricter than h11
wherever an upstream could desync the connection: obs-fold lines, both Content-Length and
Transfer-Encoding, differing Content-Lengths, chunk sizes over 20 hex digits, versions other than
1.0 and 1.1, and heads over ``max_head`` bytes are ``HTTP1ProtocolError``. The header grammar is
the server twin's, so both sides accept the same bytes.
"""

# No ``from __future__ import annotations``: Cython compiles this file as the native twin
# (``_speedups/http1_client.pyx`` includes it), and an included file cannot hold one.
import re

from modelmux.http1._head_py import (
    CHUNK_HEAD,
    comma_tokens,
    parse_response_head,
    trailer_end,
)
from modelmux.http1.common import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    BODY_UNTIL_CLOSE,
    END,
    NEED_DATA,
    HTTP1LocalError,
    HTTP1ProtocolError,
)

__all__ = ["ClientConnection", "parse_response_head"]

_TARGET = re.compile(rb"[\x21-\x7e]+")
_LINES: dict = {}  # (method, target) -> its checked request line: a pool sends to few URLs
_MAX_LINES = 256

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _UNTIL_CLOSE, _DONE = range(8)
_COMPLETE, _IDLE, _ERROR = 8, 9, 10  # END returned; no request in flight; failed
_STATE_OF = {BODY_NONE: _DONE, BODY_LENGTH: _LENGTH, BODY_CHUNKED: _CHUNK_SIZE,
             BODY_UNTIL_CLOSE: _UNTIL_CLOSE}  # the parser state that reads each body framing


def _head_end(buf: bytes) -> int:
    """Where the head ends: just past its first blank line (LF LF or LF CR LF), or -1."""
    crlf = buf.find(b"\n\r\n")
    lf = buf.find(b"\n\n", 0, len(buf) if crlf < 0 else crlf + 1)  # only before a CRLF one
    if lf >= 0:
        return lf + 2
    return -1 if crlf < 0 else crlf + 3


class ClientConnection:
    """One upstream connection's HTTP/1.1 state: frame a request, feed bytes, take events.

    ``next_event()`` returns ``(status, headers, reason)`` for the final response head, body
    ``bytes``, ``END`` or ``NEED_DATA``. ``receive_data(b"")`` means the peer closed. After an
    ``HTTP1ProtocolError`` every later call raises it again.
    """

    def __init__(self, max_head: int = 65536) -> None:
        self.max_head = max_head
        self._buf = b""
        self._state = _IDLE
        self._remaining = 0
        self._eof = False
        self._error: HTTP1ProtocolError | None = None
        self.keep_alive = True

    @property
    def in_body(self) -> bool:
        return _LENGTH <= self._state <= _DONE  # body bytes or its END still to come

    def reusable(self) -> bool:
        """The response is complete, nothing follows it, and both sides keep the connection."""
        return self._state == _COMPLETE and self.keep_alive and not self._buf and not self._eof

    def start_next_cycle(self) -> None:
        """Raises: HTTP1LocalError: the response is not complete or the connection not reusable."""
        if not self.reusable():
            raise HTTP1LocalError("the connection cannot carry another request")
        self._state = _IDLE

    def send_request(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                     body: bytes) -> bytes:
        """The bytes of the request head and body; the response is expected next.

        ``body`` needs a Content-Length header equal to its size (``request_headers`` adds it).

        Raises:
            HTTP1LocalError: a request is in flight, a header or the target holds CR, LF or NUL,
                or the body does not match the Content-Length (chunked requests are not sent).
        """
        if self._state != _IDLE:
            raise HTTP1LocalError("a request is already in flight")
        length = None
        for name, value in headers:
            lname = name.lower()
            if lname == b"content-length":
                length = value
            elif lname == b"transfer-encoding":
                raise HTTP1LocalError("chunked request bodies are not supported")
            elif lname == b"connection" and b"close" in comma_tokens(value):
                self.keep_alive = False
        if (b"%d" % len(body) if body or length is not None else None) != length:
            raise HTTP1LocalError(f"body of {len(body)} bytes with Content-Length {length!r}")
        line = _LINES.get((method, target))
        if line is None:
            if _TARGET.fullmatch(target) is None or _TARGET.fullmatch(method) is None:
                raise HTTP1LocalError(f"illegal request line {method!r} {target!r}")
            line = b"%s %s HTTP/1.1\r\n" % (method, target)
            if len(_LINES) < _MAX_LINES:
                _LINES[method, target] = line
        parts = [line]
        for name, value in headers:  # joined flat: no %-formatting per header
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        lines = len(headers) + 2
        if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\x00" in head:
            raise HTTP1LocalError(f"illegal request header in {headers!r}")
        self._state = _HEAD
        return head + body if body else head

    def receive_data(self, data: bytes) -> None:
        if data:
            self._buf += data
        else:
            self._eof = True

    def _fail(self, message: str) -> HTTP1ProtocolError:
        self._state = _ERROR
        self._error = HTTP1ProtocolError(message, 502)
        return self._error

    def _cut_short(self) -> HTTP1ProtocolError:
        return self._fail("connection closed before the response was complete")

    def next_event(self) -> object:
        """The next event from the bytes received so far.

        Raises:
            HTTP1ProtocolError: malformed or desyncing bytes, or a close mid-response.
        """
        while True:
            state, buf = self._state, self._buf
            if state == _HEAD:
                end = _head_end(buf)
                if end < 0 or end > self.max_head:
                    if len(buf) > self.max_head:
                        raise self._fail(f"response head is larger than {self.max_head} bytes")
                    if self._eof:
                        raise self._cut_short()
                    return NEED_DATA
                try:
                    status, headers, reason, keep, body, size = parse_response_head(buf, end)
                except HTTP1ProtocolError as exc:
                    raise self._fail(str(exc)) from None
                self._buf = buf[end:]
                if status < 200:
                    continue  # 1xx informational: the final response follows
                self.keep_alive = self.keep_alive and keep
                self._state, self._remaining = _STATE_OF[body], size
                return status, headers, reason
            if state == _LENGTH:
                if not buf:
                    if self._eof:
                        raise self._cut_short()
                    return NEED_DATA
                remaining = self._remaining
                if len(buf) < remaining:
                    self._buf, self._remaining = b"", remaining - len(buf)
                    return buf
                self._buf, self._state = buf[remaining:], _DONE
                return buf[:remaining] if len(buf) > remaining else buf
            if state == _UNTIL_CLOSE:
                if buf:
                    self._buf = b""
                    return buf
                if self._eof:
                    self._state = _DONE
                    return END
                return NEED_DATA
            if state == _DONE:
                self._state = _COMPLETE
                return END
            if state == _COMPLETE:  # END was returned: nothing more belongs to this response
                if self._eof:
                    raise HTTP1ProtocolError("connection closed after the response", 502)
                return NEED_DATA
            if state == _ERROR:
                assert self._error is not None
                raise self._error
            if state == _IDLE:
                raise HTTP1LocalError("no request was sent")
            event = self._chunked(state, buf)
            if event is not None:
                return event

    def _chunked(self, state: int, buf: bytes) -> object:
        """One step of the chunked decoder: an event, or None to go round again."""
        if not buf:
            if self._eof:
                raise self._cut_short()
            return NEED_DATA
        if state == _CHUNK_SIZE:
            eol = buf.find(b"\r\n")
            if eol < 0:
                return self._need_more()
            found = CHUNK_HEAD.fullmatch(buf, 0, eol + 2)
            if found is None:
                raise self._fail("illegal chunk header")
            self._buf, self._remaining = buf[eol + 2:], int(found.group(1), 16)
            self._state = _CHUNK_DATA if self._remaining else _TRAILER
            return None
        if state == _TRAILER:  # header lines up to a blank line, validated and dropped
            end = trailer_end(buf)
            if end < 0:
                raise self._fail("illegal trailer line")
            if not end:
                return self._need_more()
            self._buf, self._state = buf[end:], _DONE
            return None
        if state == _CHUNK_DATA:
            remaining = self._remaining
            if len(buf) < remaining:
                self._buf, self._remaining = b"", remaining - len(buf)
                return buf
            self._buf, self._state, self._remaining = buf[remaining:], _CHUNK_CRLF, 2
            return buf[:remaining] if len(buf) > remaining else buf
        want = b"\r\n"[2 - self._remaining:]  # _CHUNK_CRLF: the CRLF after the chunk data
        got = buf[:len(want)]
        if got != want[:len(got)]:
            raise self._fail("malformed chunk footer")
        self._buf, self._remaining = buf[len(got):], self._remaining - len(got)
        if not self._remaining:
            self._state = _CHUNK_SIZE
        return None

    def _need_more(self) -> object:
        if len(self._buf) > self.max_head:
            raise self._fail("chunk header or trailer is too long")
        if self._eof:
            raise self._cut_short()
        return NEED_DATA
