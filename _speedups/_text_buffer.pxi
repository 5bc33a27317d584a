# Included by ``access_line.pyx`` (``include "_text_buffer.pxi"``): a growing byte buffer for
# text built in C, which starts on the caller's stack and moves to the heap only when a line
# outgrows it, and its writers for integers, milliseconds and JSON-escaped ASCII.

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.string cimport memcpy, strlen


cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap
    bint heap  # data was allocated here: PyMem_Free it when done


cdef int _grow(Buf* b, Py_ssize_t more) except -1:
    cdef Py_ssize_t cap = max(b.cap * 2, b.size + more)
    cdef char* data
    if b.heap:
        data = <char*>PyMem_Realloc(b.data, cap)
    else:
        data = <char*>PyMem_Malloc(cap)
        if data != NULL:
            memcpy(data, b.data, b.size)
    if data == NULL:
        raise MemoryError()
    b.data, b.cap, b.heap = data, cap, True
    return 0


cdef inline int _lit(Buf* b, const char* s) except -1:
    return _put(b, s, strlen(s))


cdef inline int _put(Buf* b, const char* s, Py_ssize_t n) except -1:
    if b.size + n > b.cap:
        _grow(b, n)
    memcpy(b.data + b.size, s, n)
    b.size += n
    return 0


cdef int _put_int(Buf* b, long long v) except -1:
    cdef char digits[24]
    cdef int at = 24
    cdef unsigned long long u = <unsigned long long>(-v) if v < 0 else <unsigned long long>v
    while True:
        at -= 1
        digits[at] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        at -= 1
        digits[at] = b'-'
    return _put(b, digits + at, 24 - at)


cdef int _put_ms(Buf* b, long long ns) except -1:
    """``ns_to_ms_text``: milliseconds to the microsecond, half up, trailing zeros dropped."""
    cdef long long us = (ns + 500) // 1000
    cdef char frac[4]
    cdef int n = 3, fraction = <int>(us % 1000)
    _put_int(b, us // 1000)
    frac[0] = b'.'
    frac[1] = <char>(48 + fraction // 100)
    frac[2] = <char>(48 + fraction // 10 % 10)
    frac[3] = <char>(48 + fraction % 10)
    while n > 1 and frac[n] == b'0':
        n -= 1
    return _put(b, frac, n + 1)


cdef const char* HEX = b"0123456789abcdef"
cdef bint BARE[256]  # stays as it is in a JSON string: printable ASCII but " and \\


cdef void _fill_bare() noexcept:
    cdef int c
    for c in range(256):
        BARE[c] = 32 <= c < 127 and c != 34 and c != 92


_fill_bare()


cdef int _put_escaped(Buf* b, const char* s, Py_ssize_t n) except -1:
    """``json_line(json.dumps(s, ensure_ascii=False))`` of ASCII text, without the quotes: runs
    of plain characters copied whole, each other one escaped."""
    cdef Py_ssize_t i = 0, start
    cdef unsigned char c
    cdef char esc[6]
    esc[0] = b'\\'
    while i < n:
        start = i
        while i < n and BARE[<unsigned char>s[i]]:
            i += 1
        _put(b, s + start, i - start)
        if i == n:
            break
        c = <unsigned char>s[i]
        i += 1
        if c == 34 or c == 92:
            esc[1] = <char>c
        elif c == 10:
            esc[1] = b'n'
        elif c == 13:
            esc[1] = b'r'
        elif c == 9:
            esc[1] = b't'
        elif c == 8:
            esc[1] = b'b'
        elif c == 12:
            esc[1] = b'f'
        else:
            esc[1], esc[2], esc[3] = b'u', b'0', b'0'
            esc[4], esc[5] = HEX[c >> 4], HEX[c & 15]
            _put(b, esc, 6)
            continue
        _put(b, esc, 2)
    return 0
