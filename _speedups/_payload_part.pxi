# Included by ``invoke_stream.pyx``: Bedrock's ``PayloadPart`` (``{"bytes": base64, ...}``)
# scanned and its base64 decoded in one pass over the received bytes. Only the spellings whose
# result is certain are taken (plain string members, strict base64); -1 sends the caller to the
# pure twin, which decides everything else.

from libc.stdint cimport uint32_t
from libc.string cimport memcmp

cdef enum:
    INVALID = 0x01000000  # above any quad's 24 bits

cdef uint32_t _Q[4][256]
"""Base64 digit values pre-shifted to their place in a quad (``_Q[j][c]``); INVALID else."""
cdef signed char _B64[256]


cdef void _fill_b64() noexcept:
    cdef const char* alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    cdef int i, j
    for i in range(256):
        _B64[i] = -1
        for j in range(4):
            _Q[j][i] = INVALID
    for i in range(64):
        _B64[<unsigned char>alphabet[i]] = i
        for j in range(4):
            _Q[j][<unsigned char>alphabet[i]] = <uint32_t>i << (18 - 6 * j)


_fill_b64()


cdef Py_ssize_t _b64(const unsigned char* s, Py_ssize_t n, unsigned char* d, Py_ssize_t cap,
                     Py_ssize_t* used) noexcept:
    """Decode the base64 string that ``s[:n]`` opens, up to its closing quote (at ``used``):
    the bytes written to ``d``, or -1 unless it is whole quads of the alphabet with ``=`` only
    closing the last one (what strict base64 takes) and decodes to ``cap`` bytes or fewer."""
    cdef Py_ssize_t i = 0, k = 0
    cdef uint32_t w
    cdef int a, b, c
    while i + 4 <= n:
        w = _Q[0][s[i]] | _Q[1][s[i + 1]] | _Q[2][s[i + 2]] | _Q[3][s[i + 3]]
        if w >> 24:
            break
        if k + 3 > cap:
            return -1
        d[k] = <unsigned char>(w >> 16)
        d[k + 1] = <unsigned char>(w >> 8)
        d[k + 2] = <unsigned char>w
        i += 4
        k += 3
    if i < n and s[i] == 34:
        used[0] = i
        return k
    if i + 4 >= n or k + 2 > cap or s[i + 3] != 61:  # a padded quad and its quote
        return -1
    a = _B64[s[i]]
    b = _B64[s[i + 1]]
    if (a | b) < 0:
        return -1
    d[k] = <unsigned char>((a << 2) | (b >> 4))
    if s[i + 2] == 61:  # "xx=="
        k += 1
    else:  # "xxx="
        c = _B64[s[i + 2]]
        if c < 0:
            return -1
        d[k + 1] = <unsigned char>(((b & 15) << 4) | (c >> 2))
        k += 2
    if s[i + 4] != 34:
        return -1
    used[0] = i + 4
    return k


cdef inline Py_ssize_t _plain_end(const unsigned char* q, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Index of the quote closing a string of printable ASCII, no escapes, from ``q[i]``; -1."""
    while i < n:
        if q[i] == 34:
            return i
        if q[i] < 0x20 or q[i] > 0x7E or q[i] == 92:
            return -1
        i += 1
    return -1


cdef Py_ssize_t _part(const unsigned char* q, Py_ssize_t n, unsigned char* d,
                      Py_ssize_t cap) noexcept:
    """Decode the ``bytes`` member of a compact ``PayloadPart`` whose members are plain
    strings (as Bedrock writes it, with or without its ``p`` padding) into ``d``: the bytes
    written (``cap`` at most), or -1 to fall back."""
    cdef Py_ssize_t i = 1, k0, v0, used = 0, got = -1
    if n < 2 or q[0] != 123:  # {
        return -1
    while True:
        if i >= n or q[i] != 34:
            return -1
        k0 = i + 1
        i = _plain_end(q, k0, n)
        if i < 0 or i + 2 >= n or q[i + 1] != 58 or q[i + 2] != 34:  # ":"
            return -1
        v0 = i + 3
        if i - k0 == 5 and memcmp(q + k0, b"bytes", 5) == 0:
            if got >= 0:
                return -1
            got = _b64(q + v0, n - v0, d, cap, &used)
            if got < 0:
                return -1
            i = v0 + used
        else:
            i = _plain_end(q, v0, n)
            if i < 0:
                return -1
        i += 1
        if i >= n:
            return -1
        if q[i] == 125:  # }
            return got if i + 1 == n else -1
        if q[i] != 44:  # ,
            return -1
        i += 1
