# The HTTP/1.1 field grammar both native twins read heads with: byte classes, the field
# scanner, the framing checks and comma-token lookup (needs memchr, memcmp, PyBytes_*, and
# HTTP1ProtocolError).

cdef enum:
    C_TOKEN = 1
    C_VALUE = 2      # h11's field-vchar: anything but NUL, SP, HT, LF, VT, FF, CR
    C_TARGET = 4     # VCHAR
    C_HEX = 8

cdef unsigned char _CLASS[256]
cdef unsigned char _LOWER[256]


cdef void _init_tables() noexcept:
    cdef int c
    cdef bytes token = b"-!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for c in range(256):
        _CLASS[c] = 0
        _LOWER[c] = c + 32 if 65 <= c <= 90 else c
        if c not in (0, 9, 10, 11, 12, 13, 32):
            _CLASS[c] |= C_VALUE
        if 0x21 <= c <= 0x7e:
            _CLASS[c] |= C_TARGET
        if 48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102:
            _CLASS[c] |= C_HEX
    for c in token:
        _CLASS[c] |= C_TOKEN


_init_tables()


cdef inline bint _is(const unsigned char* p, Py_ssize_t n, const char* lit, Py_ssize_t m) noexcept:
    return n == m and memcmp(p, lit, m) == 0


cdef bint _has_token(bytes value, const char* token, Py_ssize_t m) noexcept:
    """``token`` (lower-case, ``m`` bytes) is among the comma-separated items of ``value``, each
    stripped of ASCII whitespace and compared without ASCII case: the pure twin's ``token in
    comma_tokens(value)`` without building the list."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i = 0, start, stop, k
    while i <= n:
        start = i
        while i < n and p[i] != 44:  # ','
            i += 1
        stop = i
        i += 1
        while start < stop and (p[start] == 32 or 9 <= p[start] <= 13):
            start += 1
        while stop > start and (p[stop - 1] == 32 or 9 <= p[stop - 1] <= 13):
            stop -= 1
        if stop - start != m:
            continue
        k = 0
        while k < m and _LOWER[p[start + k]] == <unsigned char>token[k]:
            k += 1
        if k == m:
            return True
    return False


cdef Py_ssize_t _fields(const unsigned char* p, Py_ssize_t i, Py_ssize_t stop, list out) except -2:
    """Validate header lines ``p[i:stop]`` (each ending in LF); append (lower name, value) to
    ``out`` unless it is None. Returns 0, or -1 at the first illegal line."""
    cdef Py_ssize_t name_end, eol, vs, ve, k
    cdef bytes name
    cdef unsigned char* q
    while i < stop:
        name_end = i
        while name_end < stop and _CLASS[p[name_end]] & C_TOKEN:
            name_end += 1
        if name_end == i or name_end >= stop or p[name_end] != 58:  # ':'
            return -1
        eol = (<const unsigned char*>memchr(p + name_end, 10, <size_t>(stop - name_end))) - p
        ve = eol - 1 if p[eol - 1] == 13 else eol
        vs = name_end + 1
        while vs < ve and (p[vs] == 32 or p[vs] == 9):
            vs += 1
        while ve > vs and (p[ve - 1] == 32 or p[ve - 1] == 9):
            ve -= 1
        for k in range(vs, ve):
            if not (_CLASS[p[k]] & C_VALUE or p[k] == 32 or p[k] == 9):
                return -1
        if out is not None:
            name = PyBytes_FromStringAndSize(NULL, name_end - i)
            q = <unsigned char*>PyBytes_AS_STRING(name)
            for k in range(name_end - i):
                q[k] = _LOWER[p[i + k]]
            out.append((name, PyBytes_FromStringAndSize(<const char*>p + vs, ve - vs)))
        i = eol + 1
    return 0


cdef struct Framing:
    bint chunked
    bint close
    bint expect
    int hosts


cdef bytes _framing(list headers, bint request, Framing* f):
    """One walk over decoded headers for what frames the message: returns the Content-Length
    (equal repeats dropped from ``headers``, None without one) and fills ``f`` (chunked,
    Connection: close; for a request also Host count and Expect: 100-continue). Raises
    HTTP1ProtocolError as the side's pure twin does."""
    cdef Py_ssize_t k = 0, count = len(headers), nl
    cdef tuple pair
    cdef bytes name, value, length = None
    cdef const unsigned char* n
    f.chunked = f.close = f.expect = False
    f.hosts = 0
    while k < count:
        pair = <tuple>headers[k]
        name = <bytes>pair[0]
        n = <const unsigned char*>PyBytes_AS_STRING(name)
        nl = PyBytes_GET_SIZE(name)
        k += 1
        if _is(n, nl, b"content-length", 14):
            value = _content_length(<bytes>pair[1], length)
            if value is None:  # an equal repeat: dropped
                k -= 1
                del headers[k]
                count -= 1
                continue
            length = value
            headers[k - 1] = (name, value)
        elif _is(n, nl, b"transfer-encoding", 17):
            value = (<bytes>pair[1]).lower()
            if not request:
                if f.chunked or value != b"chunked":
                    raise HTTP1ProtocolError("only one Transfer-Encoding: chunked is supported")
            elif f.chunked:
                raise HTTP1ProtocolError("multiple Transfer-Encoding headers", 501)
            elif value != b"chunked":
                raise HTTP1ProtocolError("only Transfer-Encoding: chunked is supported", 501)
            else:
                headers[k - 1] = (name, value)
            f.chunked = True
        elif _is(n, nl, b"connection", 10):
            f.close = f.close or _has_token(<bytes>pair[1], b"close", 5)
        elif request and _is(n, nl, b"host", 4):
            f.hosts += 1
        elif request and _is(n, nl, b"expect", 6):
            f.expect = f.expect or _has_token(<bytes>pair[1], b"100-continue", 12)
    if f.chunked and length is not None:
        raise HTTP1ProtocolError("both Content-Length and Transfer-Encoding")
    return length


cdef bytes _content_length(bytes value, bytes seen):
    """The pure twin's ``content_length``: a field's one value, or None for an equal repeat of
    ``seen``; HTTP1ProtocolError for non-digits, a list of differing values, or a conflict."""
    if b"," in value:
        lengths = {v.strip() for v in value.split(b",")}
        value = lengths.pop()
        if lengths:
            raise HTTP1ProtocolError("bad or conflicting Content-Length")
    if not _digits(value):
        raise HTTP1ProtocolError("bad or conflicting Content-Length")
    if seen is None:
        return value
    if value != seen:
        raise HTTP1ProtocolError("conflicting Content-Length headers")
    return None


cdef bint _digits(bytes value):
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i
    if n == 0 or n > 20:
        return False
    for i in range(n):
        if not 48 <= p[i] <= 57:
            return False
    return True
