# Shared by the native stream translators (``include "_json_scan.pxi"``): a byte scanner for the
# JSON strings of delta events that tells when the raw string bytes are exactly what msgspec
# would write for the decoded value, so they can be copied between pre-encoded chunk bytes;
# the member, index and end-of-object steps of the delta scanners; the splice of a delta.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcmp, memcpy

import msgspec

cdef object _decode_str = msgspec.json.Decoder(str).decode
cdef object _encode = msgspec.json.Encoder().encode

cdef enum:
    ESCAPED = 1       # a valid string whose escapes msgspec would write differently
    MAX_DIGITS = 18


cdef struct Delta:
    int kind
    long index
    Py_ssize_t start   # the string value, quotes included: data[start:end]
    Py_ssize_t end
    int escaped


cdef inline bint _is_ws(unsigned char c) noexcept:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline Py_ssize_t _skip_ws(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    while i < n and _is_ws(p[i]):
        i += 1
    return i


cdef inline bint _cont(unsigned char c) noexcept:
    return (c & 0xC0) == 0x80


cdef Py_ssize_t _string(
    const unsigned char* p, Py_ssize_t i, Py_ssize_t n, int* escaped
) noexcept:
    """End (after the closing quote) of the JSON string opening at ``p[i]``, or -1 to fall back.

    ``escaped`` turns ESCAPED on for ``\\u`` and ``\\/``, which msgspec writes otherwise; control
    bytes, unknown escapes and invalid UTF-8 (as Python's codec judges it) return -1.
    """
    cdef unsigned char c, c1
    i += 1
    while i < n:
        c = p[i]
        if c == 34:  # "
            return i + 1
        if c == 92:  # backslash
            if i + 1 >= n:
                return -1
            c1 = p[i + 1]
            if c1 == 34 or c1 == 92 or c1 == 98 or c1 == 102 or c1 == 110 or c1 == 114 or c1 == 116:
                i += 2
            elif c1 == 117 or c1 == 47:  # \u, \/
                escaped[0] = ESCAPED
                i += 2
            else:
                return -1
        elif c < 0x20:
            return -1
        elif c < 0x80:
            i += 1
        elif 0xC2 <= c <= 0xDF:
            if i + 1 >= n or not _cont(p[i + 1]):
                return -1
            i += 2
        elif 0xE0 <= c <= 0xEF:
            if i + 2 >= n or not _cont(p[i + 1]) or not _cont(p[i + 2]):
                return -1
            c1 = p[i + 1]
            if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 > 0x9F):
                return -1
            i += 3
        elif 0xF0 <= c <= 0xF4:
            if i + 3 >= n or not _cont(p[i + 1]) or not _cont(p[i + 2]) or not _cont(p[i + 3]):
                return -1
            c1 = p[i + 1]
            if (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 > 0x8F):
                return -1
            i += 4
        else:
            return -1
    return -1


cdef inline Py_ssize_t _plain(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """End of a string of printable ASCII without escapes opening at ``p[i]``, or -1."""
    i += 1
    while i < n:
        if p[i] == 34:
            return i + 1
        if p[i] < 0x20 or p[i] > 0x7E or p[i] == 92:
            return -1
        i += 1
    return -1


cdef inline bint _is(const unsigned char* p, Py_ssize_t a, Py_ssize_t b, const char* s, Py_ssize_t k) noexcept:
    """Whether the quoted token ``p[a:b]`` is the string ``s`` of length ``k``."""
    return b - a == k + 2 and memcmp(p + a + 1, s, <size_t>k) == 0


cdef bytes _join(bytes head, const unsigned char* p, Py_ssize_t a, Py_ssize_t b, bytes tail):
    cdef Py_ssize_t h = PyBytes_GET_SIZE(head), t = PyBytes_GET_SIZE(tail)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, h + (b - a) + t)
    cdef char* q = PyBytes_AS_STRING(out)
    memcpy(q, PyBytes_AS_STRING(head), <size_t>h)
    memcpy(q + h, p + a, <size_t>(b - a))
    memcpy(q + h + (b - a), PyBytes_AS_STRING(tail), <size_t>t)
    return out


cdef Py_ssize_t _key(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t* k1) noexcept:
    """Read ``"key" :`` at ``p[i]``: the start of its value (``k1`` ends the key), or -1."""
    if i >= n or p[i] != 34:
        return -1
    k1[0] = _plain(p, i, n)
    if k1[0] < 0:
        return -1
    i = _skip_ws(p, k1[0], n)
    if i >= n or p[i] != 58:  # :
        return -1
    i = _skip_ws(p, i + 1, n)
    return i if i < n else -1


cdef Py_ssize_t _index(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, long* index) noexcept:
    """Read a plain non-negative integer (no sign, fraction, exponent or leading zero) at
    ``p[i]``: its end, or -1."""
    cdef Py_ssize_t v = i
    cdef long value = 0
    while v < n and 48 <= p[v] <= 57:
        value = value * 10 + (p[v] - 48)
        v += 1
    if v == i or v - i > MAX_DIGITS or (v - i > 1 and p[i] == 48):
        return -1
    if v < n and (p[v] == 46 or p[v] == 101 or p[v] == 69):  # . e E
        return -1
    index[0] = value
    return v


cdef Py_ssize_t _next_member(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                             bint* closed) noexcept:
    """After a member's value at ``p[i]``: the next key (a ``,`` follows), or with ``closed`` set
    the end of the object (a ``}`` follows); -1 when neither does."""
    i = _skip_ws(p, i, n)
    if i >= n:
        return -1
    if p[i] == 125:  # }
        closed[0] = True
        return i + 1
    if p[i] != 44:  # ,
        return -1
    return _skip_ws(p, i + 1, n)


cdef object _spliced(tuple splice, bytes data, Delta* d):
    """The chunk bytes around the delta's string as msgspec writes it; None when the pure twin
    must take it (an escape msgspec cannot encode, such as a lone surrogate)."""
    if d.escaped:
        try:
            value = _encode(_decode_str(data[d.start:d.end]))
        except Exception:  # the pure twin reports it
            return None
        return splice[0] + value + splice[1]
    return _join(splice[0], <const unsigned char*>PyBytes_AS_STRING(data), d.start, d.end,
                 splice[1])
