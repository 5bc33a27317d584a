# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.http1._client_py``: the sans-I/O HTTP/1.1 client connection.

Same API, events and errors as the pure twin, which documents what is accepted and stays the
readable reference. The state lives in typed slots; consumed bytes are skipped with an index
(``_pos``) rather than sliced off; chunk heads and the request head are scanned with byte
loops. Response heads are read with the field grammar the server twin shares (``_head.pxi``)
and go straight into the parser's state; trailer sections (rare) use the pure twin's own
helper.

Body counters are C integers: a Content-Length or chunk size beyond 2**63 - 1 is clamped there,
which differs from the pure twin only after that many bytes have arrived.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp, memcpy

include "_crlf.pxi"
include "_head.pxi"

from modelmux.http1._head_py import trailer_end
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

cdef enum:
    _HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _UNTIL_CLOSE, _DONE
    _COMPLETE, _IDLE, _ERROR

cdef Py_ssize_t _MAX = <Py_ssize_t>((<size_t>-1) >> 1)
_LINES = {}  # (method, target) -> its checked request line: a pool sends to few URLs
cdef Py_ssize_t _MAX_LINES = 256


include "_request_fields.pxi"
include "_response_head.pxi"


cdef inline int _hex(unsigned char c) noexcept:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef class ClientConnection:
    """One upstream connection's HTTP/1.1 state (see the pure twin for the contract)."""

    cdef public Py_ssize_t max_head
    cdef public bint keep_alive
    cdef bytes _buf
    cdef Py_ssize_t _pos         # bytes of _buf already consumed
    cdef int _state
    cdef Py_ssize_t _remaining
    cdef bint _eof
    cdef object _error

    def __init__(self, Py_ssize_t max_head=65536):
        self.max_head = max_head
        self._buf = b""
        self._pos = 0
        self._state = _IDLE
        self._remaining = 0
        self._eof = False
        self._error = None
        self.keep_alive = True

    @property
    def in_body(self):
        return _LENGTH <= self._state <= _DONE

    cpdef bint reusable(self):
        return (self._state == _COMPLETE and self.keep_alive
                and self._pos == PyBytes_GET_SIZE(self._buf) and not self._eof)

    def start_next_cycle(self):
        if not self.reusable():
            raise HTTP1LocalError("the connection cannot carry another request")
        self._state = _IDLE

    def send_request(self, bytes method not None, bytes target not None, headers, body):
        cdef list items
        cdef tuple pair
        cdef bytes name, value, line, out, length = None
        cdef bytes data
        cdef Py_ssize_t total, nl, vl, blen
        cdef char* q
        if self._state != _IDLE:
            raise HTTP1LocalError("a request is already in flight")
        data = _as_bytes(body)
        blen = PyBytes_GET_SIZE(data)
        items = _pairs(headers)
        for pair in items:
            name = <bytes>pair[0]
            if _named(name, b"content-length", 14):
                length = <bytes>pair[1]
            elif _named(name, b"transfer-encoding", 17):
                raise HTTP1LocalError("chunked request bodies are not supported")
            elif _named(name, b"connection", 10) and _has_token(<bytes>pair[1], b"close", 5):
                self.keep_alive = False
        if (blen or length is not None) and (length is None or not _decimal_is(length, blen)):
            raise HTTP1LocalError(f"body of {blen} bytes with Content-Length {length!r}")
        key = (method, target)
        line = _LINES.get(key)
        if line is None:
            if not _vchars(target) or not _vchars(method):
                raise HTTP1LocalError(f"illegal request line {method!r} {target!r}")
            line = b"%s %s HTTP/1.1\r\n" % (method, target)
            if len(_LINES) < _MAX_LINES:
                _LINES[key] = line
        total = PyBytes_GET_SIZE(line) + 2 + blen
        for pair in items:
            name = <bytes>pair[0]
            value = <bytes>pair[1]
            if not _clean(name) or not _clean(value):
                raise HTTP1LocalError(f"illegal request header in {headers!r}")
            total += PyBytes_GET_SIZE(name) + PyBytes_GET_SIZE(value) + 4
        out = PyBytes_FromStringAndSize(NULL, total)
        q = PyBytes_AS_STRING(out)
        memcpy(q, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))
        q += PyBytes_GET_SIZE(line)
        for pair in items:
            name = <bytes>pair[0]
            value = <bytes>pair[1]
            nl = PyBytes_GET_SIZE(name)
            vl = PyBytes_GET_SIZE(value)
            memcpy(q, PyBytes_AS_STRING(name), nl)
            q[nl] = 58
            q[nl + 1] = 32
            q += nl + 2
            memcpy(q, PyBytes_AS_STRING(value), vl)
            q[vl] = 13
            q[vl + 1] = 10
            q += vl + 2
        q[0] = 13
        q[1] = 10
        if blen:
            memcpy(q + 2, PyBytes_AS_STRING(data), blen)
        self._state = _HEAD
        return out

    def receive_data(self, data):
        if not data:
            self._eof = True
            return
        buf = self._buf
        if self._pos:
            buf = buf[self._pos:]
            self._pos = 0
        if not buf and type(data) is bytes:
            self._buf = data
        else:
            self._buf = buf + data

    cdef _fail(self, str message):
        self._state = _ERROR
        self._error = HTTP1ProtocolError(message, 502)
        return self._error

    cdef inline void _consume(self, Py_ssize_t k) noexcept:
        self._pos += k
        if self._pos == PyBytes_GET_SIZE(self._buf):
            self._buf = b""
            self._pos = 0

    cdef object _need_more(self, Py_ssize_t avail):
        if avail > self.max_head:
            raise self._fail("chunk header or trailer is too long")
        if self._eof:
            raise self._fail("connection closed before the response was complete")
        return NEED_DATA

    def next_event(self):
        cdef bytes buf
        cdef const unsigned char* p
        cdef Py_ssize_t n, pos, avail, end, i, remaining
        cdef int state, digit
        cdef size_t size
        cdef Framed framed
        while True:
            state = self._state
            buf = self._buf
            pos = self._pos
            n = PyBytes_GET_SIZE(buf)
            avail = n - pos
            p = <const unsigned char*>PyBytes_AS_STRING(buf) + pos
            if _LENGTH <= state <= _TRAILER and avail == 0:
                if self._eof:
                    raise self._fail("connection closed before the response was complete")
                return NEED_DATA
            if state == _LENGTH or state == _CHUNK_DATA:
                remaining = self._remaining
                if avail < remaining:
                    self._buf = b""
                    self._pos = 0
                    self._remaining = remaining - avail
                    return buf[pos:] if pos else buf
                if state == _LENGTH:
                    self._state = _DONE
                else:
                    self._state = _CHUNK_CRLF
                    self._remaining = 2
                self._consume(remaining)
                return buf if pos == 0 and remaining == n else buf[pos:pos + remaining]
            if state == _HEAD:
                if pos:
                    buf = buf[pos:]
                    self._buf = buf
                    self._pos = 0
                    p = <const unsigned char*>PyBytes_AS_STRING(buf)
                end = _head_end(p, avail)
                if end < 0 or end > self.max_head:
                    if avail > self.max_head:
                        raise self._fail(f"response head is larger than {self.max_head} bytes")
                    if self._eof:
                        raise self._fail("connection closed before the response was complete")
                    return NEED_DATA
                try:
                    head = _response_head(buf, end, &framed)
                except HTTP1ProtocolError as exc:
                    raise self._fail(str(exc)) from None
                self._consume(end)
                if framed.status < 200:
                    continue  # 1xx informational: the final response follows
                self.keep_alive = self.keep_alive and framed.keep_alive
                self._state = framed.state
                self._remaining = framed.length
                return head
            if state == _CHUNK_SIZE:
                end = _crlf(p, avail)
                if end < 0:
                    return self._need_more(avail)
                size = 0
                i = 0
                while i < end:
                    digit = _hex(p[i])
                    if digit < 0:
                        break
                    size = (size << 4) | digit if size <= (<size_t>_MAX) >> 4 else <size_t>_MAX
                    i += 1
                if i == 0 or i > 20:
                    raise self._fail("illegal chunk header")
                if p[i] == 59:  # ';' then anything but LF
                    if memchr(p + i, 10, <size_t>(end - i)) != NULL:
                        raise self._fail("illegal chunk header")
                else:
                    while i < end and (p[i] == 32 or p[i] == 9):
                        i += 1
                    if i != end:
                        raise self._fail("illegal chunk header")
                self._remaining = <Py_ssize_t>size if size <= <size_t>_MAX else _MAX
                self._state = _CHUNK_DATA if size else _TRAILER
                self._consume(end + 2)
                continue
            if state == _CHUNK_CRLF:
                i = 0
                while self._remaining and i < avail:
                    if p[i] != (13 if self._remaining == 2 else 10):
                        raise self._fail("malformed chunk footer")
                    self._remaining -= 1
                    i += 1
                self._consume(i)
                if not self._remaining:
                    self._state = _CHUNK_SIZE
                continue
            if state == _TRAILER:  # header lines up to a blank line, validated and dropped
                if p[0] == 10:
                    end = 1
                elif avail >= 2 and p[0] == 13 and p[1] == 10:
                    end = 2
                else:
                    end = trailer_end(buf[pos:])
                    if end < 0:
                        raise self._fail("illegal trailer line")
                    if not end:
                        return self._need_more(avail)
                self._consume(end)
                self._state = _DONE
                continue
            if state == _UNTIL_CLOSE:
                if avail:
                    self._buf = b""
                    self._pos = 0
                    return buf[pos:] if pos else buf
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
                raise self._error
            raise HTTP1LocalError("no request was sent")
