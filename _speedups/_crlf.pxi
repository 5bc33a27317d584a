# The CR LF scan both native HTTP/1.1 twins frame chunked bodies with (needs memchr).

cdef Py_ssize_t _crlf(const unsigned char* p, Py_ssize_t n) noexcept:
    """Index of the first CR LF in ``p[:n]``, or -1."""
    cdef const unsigned char* hit
    cdef Py_ssize_t i = 0
    while i + 1 < n:
        hit = <const unsigned char*>memchr(p + i, 13, <size_t>(n - i - 1))
        if hit == NULL:
            return -1
        i = hit - p
        if p[i + 1] == 10:
            return i
        i += 1
    return -1
