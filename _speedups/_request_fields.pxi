# What the native client checks a request head with and copies it from: header names matched
# without case, the request line's and fields' byte checks, the Content-Length against the
# body, headers as (bytes, bytes) pairs. Included by http1_client.pyx (needs memcmp and
# PyBytes_*).

cdef bint _named(bytes name, const char* lower, Py_ssize_t m) noexcept:
    """``name.lower() == lower`` for an ASCII ``lower`` of ``m`` bytes."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(name)
    cdef Py_ssize_t i
    cdef unsigned char c
    if PyBytes_GET_SIZE(name) != m:
        return False
    for i in range(m):
        c = p[i]
        if 65 <= c <= 90:
            c += 32
        if c != <unsigned char>lower[i]:
            return False
    return True


cdef bint _vchars(bytes s) noexcept:
    """Non-empty and all VCHAR: the pure twin's ``[\\x21-\\x7e]+``."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(s)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(s)
    if n == 0:
        return False
    for i in range(n):
        if not 0x21 <= p[i] <= 0x7e:
            return False
    return True


cdef bint _clean(bytes s) noexcept:
    """No CR, LF or NUL in ``s``."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(s)
    cdef Py_ssize_t i
    for i in range(PyBytes_GET_SIZE(s)):
        if p[i] == 13 or p[i] == 10 or p[i] == 0:
            return False
    return True


cdef bint _decimal_is(bytes text, Py_ssize_t value) noexcept:
    """``text == b"%d" % value`` for a non-negative ``value``."""
    cdef char digits[24]
    cdef Py_ssize_t i = 24, n = PyBytes_GET_SIZE(text)
    while True:
        i -= 1
        digits[i] = <char>(48 + value % 10)
        value //= 10
        if value == 0:
            break
    return n == 24 - i and memcmp(PyBytes_AS_STRING(text), digits + i, <size_t>n) == 0


cdef bytes _as_bytes(object value):
    return value if type(value) is bytes else memoryview(value).tobytes()


cdef list _pairs(object headers):
    """``headers`` as a list of (bytes, bytes) tuples: itself when it already is one."""
    cdef bint exact = type(headers) is list
    if exact:
        for pair in <list>headers:
            if not (type(pair) is tuple and len(<tuple>pair) == 2
                    and type((<tuple>pair)[0]) is bytes and type((<tuple>pair)[1]) is bytes):
                exact = False
                break
    if exact:
        return <list>headers
    out = []
    for name, value in headers:
        out.append((_as_bytes(name), _as_bytes(value)))
    return out
