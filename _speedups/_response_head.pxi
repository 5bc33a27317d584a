# How the native client reads a response head: where it ends, the status line, the fields
# (``_head.pxi``'s grammar) and the framing of the body that follows, into ``Framed``; and the
# pure twin's ``parse_response_head`` over the same code. Included by http1_client.pyx after
# its parser states (needs memchr, memcmp, PyBytes_*, _head.pxi, HTTP1ProtocolError, BODY_*).

cdef Py_ssize_t _head_end(const unsigned char* p, Py_ssize_t n) noexcept:
    """Index just past the first ``\\n\\r?\\n``, or -1 (the pure twin's ``_head_end``)."""
    cdef const unsigned char* hit
    cdef Py_ssize_t i = 0
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


cdef struct Framed:
    int status
    bint keep_alive
    int state  # the parser state that reads the body: _DONE, _LENGTH, _CHUNK_SIZE, _UNTIL_CLOSE
    Py_ssize_t length  # the Content-Length, clamped to _MAX; 0 unless the state is _LENGTH


cdef tuple _response_head(bytes buf, Py_ssize_t end, Framed* out):
    """The head ``buf[:end]`` as ``next_event`` returns it, (status, headers, reason), with
    what frames the body in ``out``. Raises HTTP1ProtocolError as the pure twin's
    ``parse_response_head`` does, with the same messages."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t i, reason_start, reason_end, stop
    cdef list headers = []
    cdef bytes length, reason
    cdef bint modern
    cdef Framing f
    cdef int status
    if end > PyBytes_GET_SIZE(buf) or end < 14 or memcmp(p, b"HTTP/1.", 7) != 0 \
            or not (p[7] == 48 or p[7] == 49) or p[8] != 32 \
            or not (48 <= p[9] <= 57 and 48 <= p[10] <= 57 and 48 <= p[11] <= 57):
        raise HTTP1ProtocolError("illegal status line")
    modern = p[7] == 49
    status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
    i = reason_start = reason_end = 12
    if p[i] == 32:  # a reason phrase: HTAB, SP, VCHAR, obs-text
        i = reason_start = 13
        while i < end and (p[i] == 9 or p[i] == 32 or 0x21 <= p[i]) and p[i] != 0x7f:
            i += 1
        reason_end = i
    if i < end and p[i] == 13:
        i += 1
    if i >= end or p[i] != 10:
        raise HTTP1ProtocolError("illegal status line")
    i += 1
    stop = end - 2 if p[end - 2] == 13 else end - 1
    if i > stop or _fields(p, i, stop, headers) < 0:
        raise HTTP1ProtocolError("illegal header line (obs-fold, bad name or value)")
    length = _framing(headers, False, &f)
    reason = PyBytes_FromStringAndSize(<const char*>p + reason_start, reason_end - reason_start)
    out.status = status
    out.keep_alive = modern and not f.close
    out.length = 0
    if status < 200 or status == 204 or status == 304:
        out.state = _DONE
    elif f.chunked:
        out.state = _CHUNK_SIZE
    elif length is not None:
        out.length = _decimal(length)
        out.state = _LENGTH if out.length else _DONE
    else:
        out.state = _UNTIL_CLOSE
        out.keep_alive = False
    return (status, headers, reason)


cdef Py_ssize_t _decimal(bytes digits) noexcept:
    """The value of checked decimal ``digits``, clamped to _MAX."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(digits)
    cdef Py_ssize_t i, d, value = 0
    for i in range(PyBytes_GET_SIZE(digits)):
        d = p[i] - 48
        if value > (_MAX - d) // 10:
            return _MAX
        value = value * 10 + d
    return value


def parse_response_head(bytes buf not None, Py_ssize_t end):
    """The pure twin's ``parse_response_head``: status, headers, reason, keep-alive, body
    framing (``BODY_*``) and the Content-Length."""
    cdef Framed framed
    status, headers, reason = _response_head(buf, end, &framed)
    size = framed.length
    if size == _MAX:  # clamped for the parser; the exact value here
        size = int(next(v for n, v in headers if n == b"content-length"))
    state = framed.state
    body = (BODY_NONE if state == _DONE else BODY_LENGTH if state == _LENGTH
            else BODY_CHUNKED if state == _CHUNK_SIZE else BODY_UNTIL_CLOSE)
    return status, headers, reason, framed.keep_alive, body, size
