# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.http1._server_py``: the sans-I/O HTTP/1.1 server connection.

Same API, events and errors as the pure twin (which documents what is accepted: h11 0.16's
grammar, stricter on obs-fold, Content-Length with Transfer-Encoding, and versions other than
1.0/1.1). The head is scanned once with memchr and 256-entry class tables (``_head.pxi``, which
the client twin reads response heads with); names are lower-cased while copied; the response
head is written into one bytes object.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp, memcpy

include "_crlf.pxi"
include "_head.pxi"

from modelmux.http1.common import (
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

cdef enum:
    S_HEAD, S_BODY, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_CRLF, S_TRAILER, S_DONE, S_ERROR
    M_NO_BODY, M_LENGTH, M_CHUNKED, M_UNTIL_CLOSE


cdef Py_ssize_t _head_end(const unsigned char* p, Py_ssize_t start, Py_ssize_t n) noexcept:
    """Index just past the first ``\\n\\r?\\n`` at or after ``start``, or -1."""
    cdef const unsigned char* hit
    cdef Py_ssize_t i = start
    while i < n:
        hit = <const unsigned char*>memchr(p + i, 10, <size_t>(n - i))
        if hit == NULL:
            return -1
        i = hit - p + 1
        if i < n and p[i] == 10:
            return i + 1
        if i + 1 < n and p[i] == 13 and p[i + 1] == 10:
            return i + 2
    return -1


cdef object _parse_head(bytes buf, Py_ssize_t end):
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t i = 0, m_end, t_start, t_end, stop
    cdef list headers = []
    cdef bytes method, target, version, length
    cdef bint modern
    cdef Framing f
    while _CLASS[p[i]] & C_TOKEN:
        i += 1
    m_end = i
    if m_end == 0 or p[i] != 32:
        raise HTTP1ProtocolError("illegal request line")
    i += 1
    t_start = i
    while _CLASS[p[i]] & C_TARGET:
        i += 1
    t_end = i
    if t_end == t_start or p[i] != 32 or i + 10 > end or memcmp(p + i + 1, b"HTTP/", 5) != 0:
        raise HTTP1ProtocolError("illegal request line")
    i += 6
    if not (48 <= p[i] <= 57 and p[i + 1] == 46 and 48 <= p[i + 2] <= 57):
        raise HTTP1ProtocolError("illegal request line")
    version = PyBytes_FromStringAndSize(<const char*>p + i, 3)
    i += 3
    if p[i] == 13:
        i += 1
    if p[i] != 10:
        raise HTTP1ProtocolError("illegal request line")
    if version != b"1.1" and version != b"1.0":
        raise HTTP1ProtocolError(f"unsupported HTTP version {version.decode()}", 505)
    i += 1
    stop = end - 2 if p[end - 2] == 13 else end - 1
    if _fields(p, i, stop, headers) < 0:
        raise HTTP1ProtocolError("illegal header line (obs-fold, bad name or value)")
    length = _framing(headers, True, &f)
    if f.hosts > 1:
        raise HTTP1ProtocolError("multiple Host headers")
    modern = version == b"1.1"
    if f.hosts == 0 and modern:
        raise HTTP1ProtocolError("missing Host header")
    method = PyBytes_FromStringAndSize(<const char*>p, m_end)
    target = PyBytes_FromStringAndSize(<const char*>p + t_start, t_end - t_start)
    return RequestHead(method, target, b"1.1" if modern else b"1.0", headers,
                       None if length is None else int(length), f.chunked,
                       modern and not f.close, modern and f.expect)


cdef class ServerConnection:
    """One client connection's HTTP/1.1 state (see the pure twin for the contract)."""

    cdef public Py_ssize_t max_head
    cdef bytes _buf
    cdef int _state
    cdef int _mode
    cdef Py_ssize_t _search
    cdef object _remaining      # a Python int: chunk sizes may have 20 hex digits
    cdef Py_ssize_t _discard
    cdef object _error
    cdef bint _head_request
    cdef bint _http10
    cdef public bint keep_alive
    cdef public bint waiting_for_continue
    cdef public bint response_started
    cdef public bint response_complete

    def __init__(self, Py_ssize_t max_head=65536):
        self.max_head = max_head
        self._buf = b""
        self._state = S_HEAD
        self._mode = M_NO_BODY
        self._search = 0
        self._remaining = 0
        self._discard = 0
        self._error = None
        self._head_request = False
        self._http10 = True
        self.keep_alive = True
        self.waiting_for_continue = False
        self.response_started = False
        self.response_complete = False

    @property
    def trailing(self):
        return self._buf

    @property
    def in_body(self):
        return S_BODY <= self._state <= S_TRAILER

    @property
    def request_complete(self):
        return self._state == S_DONE

    cpdef bint reusable(self):
        return self._state == S_DONE and self.response_complete and self.keep_alive

    def receive_data(self, data):
        if self._buf:
            self._buf += data
        else:
            self._buf = bytes(data)

    def start_next_cycle(self):
        if not self.reusable():
            raise HTTP1LocalError("the connection cannot start another request")
        self._state = S_HEAD
        self._search = 0
        self._http10 = True
        self.response_started = self.response_complete = self.waiting_for_continue = False

    cdef _fail(self, str message, int status=400):
        self._state = S_ERROR
        self._error = HTTP1ProtocolError(message, status)
        return self._error

    def next_event(self):
        cdef bytes buf = self._buf
        cdef Py_ssize_t n = PyBytes_GET_SIZE(buf), end
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
        cdef int state = self._state
        if state == S_HEAD:
            if n == 0:
                return NEED_DATA
            if p[0] < 0x21:
                raise self._fail("illegal request line")
            end = _head_end(p, self._search, n)
            if end < 0:
                self._search = n - 2 if n > 2 else 0
                if n > self.max_head:
                    raise self._fail(f"request head is larger than {self.max_head} bytes", 431)
                return NEED_DATA
            if end > self.max_head:
                raise self._fail(f"request head is larger than {self.max_head} bytes", 431)
            try:
                head = _parse_head(buf, end)
            except HTTP1ProtocolError as exc:
                self._state = S_ERROR
                self._error = exc
                raise
            self._buf = buf[end:]
            self._head_request = head.method == b"HEAD"
            self._http10 = head.http_version == b"1.0"
            self.keep_alive = head.keep_alive
            self.waiting_for_continue = head.expect_continue
            if head.chunked:
                self._state = S_CHUNK_SIZE
            else:
                self._state = S_BODY
                self._remaining = head.content_length or 0
            return head
        if state == S_BODY:
            if self._remaining == 0:
                self._state = S_DONE
                self.waiting_for_continue = False
                return END
            if n == 0:
                return NEED_DATA
            self.waiting_for_continue = False
            if n <= self._remaining:
                self._buf = b""
                self._remaining -= n
                return buf
            end = self._remaining
            self._buf = buf[end:]
            self._remaining = 0
            return buf[:end]
        if state == S_DONE:
            return PAUSED if n else NEED_DATA
        if state == S_ERROR:
            raise self._error
        return self._chunked()

    cdef object _chunked(self):
        cdef bytes buf
        cdef const unsigned char* p
        cdef Py_ssize_t n, eol, i, digits, stop
        cdef const unsigned char* hit
        while True:
            buf = self._buf
            n = PyBytes_GET_SIZE(buf)
            p = <const unsigned char*>PyBytes_AS_STRING(buf)
            if n == 0:
                return NEED_DATA
            self.waiting_for_continue = False
            if self._state == S_CHUNK_SIZE:
                eol = _crlf(p, n)
                if eol < 0:
                    return self._need_more(n)
                i = 0
                while i < eol and _CLASS[p[i]] & C_HEX:
                    i += 1
                digits = i
                if digits == 0 or digits > 20:
                    raise self._fail("illegal chunk header")
                if i < eol and p[i] == 59:  # ';' then anything but LF
                    if memchr(p + i, 10, <size_t>(eol - i)) != NULL:
                        raise self._fail("illegal chunk header")
                else:
                    while i < eol and (p[i] == 32 or p[i] == 9):
                        i += 1
                    if i != eol:
                        raise self._fail("illegal chunk header")
                self._remaining = int(buf[:digits], 16)
                self._buf = buf[eol + 2:]
                self._state = S_CHUNK_DATA if self._remaining else S_TRAILER
            elif self._state == S_CHUNK_DATA:
                if n < self._remaining:
                    self._buf = b""
                    self._remaining -= n
                    return buf
                eol = self._remaining
                self._buf = buf[eol:]
                self._state = S_CHUNK_CRLF
                self._discard = 0
                return buf[:eol] if n > eol else buf
            elif self._state == S_CHUNK_CRLF:
                while self._discard < 2 and n > 0:
                    if p[0] != (13 if self._discard == 0 else 10):
                        raise self._fail("malformed chunk footer")
                    self._discard += 1
                    p += 1
                    n -= 1
                self._buf = buf[PyBytes_GET_SIZE(buf) - n:]
                if self._discard == 2:
                    self._state = S_CHUNK_SIZE
            else:
                if p[0] == 10:
                    eol = 1
                elif n >= 2 and p[0] == 13 and p[1] == 10:
                    eol = 2
                else:
                    eol = _head_end(p, 0, n)
                    if eol < 0:
                        return self._need_more(n)
                    stop = eol - 2 if p[eol - 2] == 13 else eol - 1
                    if _fields(p, 0, stop, None) < 0:
                        raise self._fail("illegal trailer line")
                self._buf = buf[eol:]
                self._state = S_DONE
                return END

    cdef object _need_more(self, Py_ssize_t n):
        if n > self.max_head:
            raise self._fail("chunk header or trailer is too long", 431)
        return NEED_DATA

    def send_response(self, int status, list headers not None, *, bint end, bytes body not None=b""):
        cdef bint sized = False, closing = False
        cdef Py_ssize_t total, k, vlen, nlen, body_len
        cdef bytes name, value, line, out, chunk_head
        cdef tuple pair
        cdef char* q
        cdef const unsigned char* v
        if self.response_started:
            raise HTTP1LocalError("a response was already sent for this request")
        self.response_started = True
        self.waiting_for_continue = False
        for pair in headers:
            if type(pair[0]) is not bytes or type(pair[1]) is not bytes:
                raise HTTP1LocalError(f"response header {pair!r} is not a pair of bytes")
            name = <bytes>pair[0]
            if name == b"content-length":
                sized = True
            elif name == b"connection" and _has_token(<bytes>pair[1], b"close", 5):
                closing = True
        if self._head_request or status == 204 or status == 304:
            self._mode = M_NO_BODY
        elif sized:
            self._mode = M_LENGTH
        elif self._http10:
            self._mode = M_UNTIL_CLOSE
            self.keep_alive = False
        else:
            self._mode = M_CHUNKED
        extra = []
        if not sized and not self._http10 and status != 204 and status != 304:
            extra.append((b"transfer-encoding", b"chunked"))
        if closing:
            self.keep_alive = False
        elif not self.keep_alive:
            extra.append((b"connection", b"close"))
        line = STATUS_LINES.get(status) or (b"HTTP/1.1 %d \r\n" % status)
        total = PyBytes_GET_SIZE(line) + 2
        for pair in headers:
            total += PyBytes_GET_SIZE(<bytes>pair[0]) + PyBytes_GET_SIZE(<bytes>pair[1]) + 4
        for pair in extra:
            total += PyBytes_GET_SIZE(<bytes>pair[0]) + PyBytes_GET_SIZE(<bytes>pair[1]) + 4
        body_len = PyBytes_GET_SIZE(body) if end and self._mode != M_NO_BODY else 0
        chunk_head = b""
        if body_len and self._mode == M_CHUNKED:
            chunk_head = b"%x\r\n" % body_len
            total += PyBytes_GET_SIZE(chunk_head) + 7  # CRLF after the data, then 0 CRLF CRLF
        total += body_len
        out = PyBytes_FromStringAndSize(NULL, total)
        q = PyBytes_AS_STRING(out)
        memcpy(q, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))
        q += PyBytes_GET_SIZE(line)
        for group in (headers, extra):
            for pair in group:
                name = <bytes>pair[0]
                value = <bytes>pair[1]
                nlen = PyBytes_GET_SIZE(name)
                vlen = PyBytes_GET_SIZE(value)
                v = <const unsigned char*>PyBytes_AS_STRING(value)
                for k in range(vlen):
                    if v[k] == 13 or v[k] == 10 or v[k] == 0:
                        raise HTTP1LocalError(f"illegal response header value {value!r}")
                v = <const unsigned char*>PyBytes_AS_STRING(name)
                for k in range(nlen):
                    if v[k] == 13 or v[k] == 10 or v[k] == 0:
                        raise HTTP1LocalError(f"illegal response header name {name!r}")
                memcpy(q, PyBytes_AS_STRING(name), nlen)
                q[nlen] = 58
                q[nlen + 1] = 32
                q += nlen + 2
                memcpy(q, PyBytes_AS_STRING(value), vlen)
                q[vlen] = 13
                q[vlen + 1] = 10
                q += vlen + 2
        q[0] = 13
        q[1] = 10
        q += 2
        if end:
            self.response_complete = True
        if body_len:
            if self._mode == M_CHUNKED:
                memcpy(q, PyBytes_AS_STRING(chunk_head), PyBytes_GET_SIZE(chunk_head))
                q += PyBytes_GET_SIZE(chunk_head)
            memcpy(q, PyBytes_AS_STRING(body), body_len)
            q += body_len
            if self._mode == M_CHUNKED:
                memcpy(q, b"\r\n0\r\n\r\n", 7)
        return out

    def send_data(self, bytes data not None):
        if not data or self._mode == M_NO_BODY:
            return b""
        if self._mode == M_CHUNKED:
            return b"%x\r\n%s\r\n" % (PyBytes_GET_SIZE(data), data)
        return data

    def send_end(self):
        self.response_complete = True
        return b"0\r\n\r\n" if self._mode == M_CHUNKED else b""

    def send_continue(self):
        if self.waiting_for_continue and not self.response_started:
            self.waiting_for_continue = False
            return CONTINUE
        return b""
