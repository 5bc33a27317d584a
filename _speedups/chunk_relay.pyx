# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.providers.chunk_relay``: the same relay, a fused per-event loop.

An ordinary chunk (not the first, not ``[DONE]``, no ``"error"``, one line) is checked for a
usage object, renamed and framed as ``data: <payload>\\n\\n`` in C, one allocation per event.
Every other event goes to the pure ``ChunkRelay._event``, which this class extends, so both
paths share one state and give the same bytes (a hypothesis test compares the twins).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp, memcpy

from modelmux.providers.chunk_relay import ChunkRelay as _Pure

__all__ = ["ChunkRelay"]


cdef extern from "string.h":
    # glibc (Python.h defines _GNU_SOURCE), the BSDs and macOS declare it here
    void* memmem(const void* haystack, size_t n, const void* needle, size_t m) nogil


cdef inline Py_ssize_t _find(const char* p, Py_ssize_t n, const char* s, Py_ssize_t m) noexcept:
    """Index of the first ``s[:m]`` in ``p[:n]``, or -1 (``m`` > 0)."""
    cdef const char* hit = <const char*>memmem(p, <size_t>n, s, <size_t>m)
    return -1 if hit == NULL else hit - p


cdef bint _carries_usage(const char* p, Py_ssize_t n) noexcept:
    """``providers.base.carries_usage``: the last ``"usage":`` is followed, within 16 bytes
    of ASCII whitespace, by ``{``."""
    cdef Py_ssize_t at = n - 8, j, stop
    while at >= 0:
        if p[at] == 34 and memcmp(p + at, b'"usage":', 8) == 0:
            break
        at -= 1
    if at < 0:
        return False
    j = at + 8
    stop = min(at + 24, n)
    while j < stop and (p[j] == 32 or 9 <= p[j] <= 13):
        j += 1
    return j < stop and p[j] == 123  # '{'


class ChunkRelay(_Pure):
    """See the pure twin; ``feed`` handles ordinary chunks without per-event Python work."""

    def feed(self, data):
        cdef list out = []
        cdef bytes payload, old, new, framed
        cdef const char* p
        cdef char* q
        cdef Py_ssize_t n, at, m, k
        cdef tuple swap
        for event in self._decoder.feed(data):
            payload = event.data
            n = PyBytes_GET_SIZE(payload)
            p = PyBytes_AS_STRING(payload)
            swap = self._swap
            if (self._finished or swap is None or n == 0
                    or (n == 6 and memcmp(p, b"[DONE]", 6) == 0)
                    or _find(p, n, b'"error"', 7) >= 0
                    or memchr(p, 10, <size_t>n) != NULL or memchr(p, 13, <size_t>n) != NULL):
                self._event(payload, out)
                continue
            if _carries_usage(p, n):
                self._usage = payload
            old = <bytes>swap[0]
            new = <bytes>swap[1]
            m = PyBytes_GET_SIZE(old)
            at = -1 if m == 0 or old == new else _find(p, n, PyBytes_AS_STRING(old), m)
            k = PyBytes_GET_SIZE(new) if at >= 0 else m
            framed = PyBytes_FromStringAndSize(NULL, 8 + n - m + k if at >= 0 else 8 + n)
            q = PyBytes_AS_STRING(framed)
            memcpy(q, b"data: ", 6)
            q += 6
            if at >= 0:
                memcpy(q, p, <size_t>at)
                q += at
                memcpy(q, PyBytes_AS_STRING(new), <size_t>k)
                q += k
                memcpy(q, p + at + m, <size_t>(n - at - m))
                q += n - at - m
            else:
                memcpy(q, p, <size_t>n)
                q += n
            q[0] = 10
            q[1] = 10
            out.append(framed)
        self._started = self._started or bool(out)
        return out
