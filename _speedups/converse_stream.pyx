# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.translate._converse_stream_py``: the same translator, a fused hot path.

A ``contentBlockDelta`` event whose payload is ``{"delta": {"text": ...} | {"toolUse": {"input":
...}}, "contentBlockIndex": N, "p": ...}`` (any key order, Bedrock's ``p`` padding optional) is
scanned as bytes, and its string is copied verbatim between the chunk bytes the pure twin
pre-encodes per stream, when that copy is exactly what msgspec would write. Every other event,
and any payload the scanner is unsure of, goes to the pure ``ConverseStreamTranslator``, which
this class extends, so both paths share one state and give the same bytes.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject

from modelmux.translate._converse_stream_py import ConverseStreamTranslator as _Pure

__all__ = ["ConverseStreamTranslator"]

cdef str _EVENT = "event"
cdef str _DELTA = "contentBlockDelta"

cdef enum:
    NO_KIND = 0
    TEXT = 1
    INPUT = 2


include "_json_scan.pxi"


cdef Py_ssize_t _close(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """After a lone member's value: the end of its object's ``}``, or -1."""
    i = _skip_ws(p, i, n)
    return i + 1 if i < n and p[i] == 125 else -1


cdef Py_ssize_t _delta_object(
    const unsigned char* p, Py_ssize_t i, Py_ssize_t n, Delta* out
) noexcept:
    """Scan ``{"text": "..."}`` or ``{"toolUse": {"input": "..."}}`` at ``p[i]``: its end, or -1."""
    cdef Py_ssize_t k0, k1 = 0, v
    k0 = _skip_ws(p, i + 1, n)
    v = _key(p, k0, n, &k1)
    if v < 0:
        return -1
    if _is(p, k0, k1, "text", 4):
        out.kind = TEXT
    elif _is(p, k0, k1, "toolUse", 7):
        if p[v] != 123:  # {
            return -1
        k0 = _skip_ws(p, v + 1, n)
        v = _key(p, k0, n, &k1)
        if v < 0 or not _is(p, k0, k1, "input", 5):
            return -1
        out.kind = INPUT
    else:
        return -1
    if p[v] != 34:
        return -1
    out.start = v
    out.end = _string(p, v, n, &out.escaped)
    if out.end < 0:
        return -1
    v = _close(p, out.end, n)
    if v >= 0 and out.kind == INPUT:
        v = _close(p, v, n)
    return v


cdef bint _scan(const unsigned char* p, Py_ssize_t n, Delta* out) noexcept:
    """Scan a whole contentBlockDelta payload; False means the pure twin must take it.

    Keys other than delta, contentBlockIndex and p, repeated keys, indexes other than plain
    non-negative integers, a ``p`` that is not a plain string, and anything after the object
    make it fall back.
    """
    cdef Py_ssize_t i, k0, k1 = 0, v
    cdef int seen_delta = 0, seen_index = 0, seen_pad = 0, pad_escaped = 0
    cdef bint closed = False
    i = _skip_ws(p, 0, n)
    if i >= n or p[i] != 123:
        return False
    i = _skip_ws(p, i + 1, n)
    while True:
        k0 = i
        v = _key(p, k0, n, &k1)
        if v < 0:
            return False
        if _is(p, k0, k1, "delta", 5):
            if seen_delta or p[v] != 123:
                return False
            seen_delta = 1
            v = _delta_object(p, v, n, out)
        elif _is(p, k0, k1, "contentBlockIndex", 17):
            if seen_index:
                return False
            seen_index = 1
            v = _index(p, v, n, &out.index)
        elif _is(p, k0, k1, "p", 1):
            if seen_pad or p[v] != 34:
                return False
            seen_pad = 1
            v = _string(p, v, n, &pad_escaped)
            if pad_escaped:
                return False
        else:
            return False
        if v < 0:
            return False
        i = _next_member(p, v, n, &closed)
        if i < 0:
            return False
        if closed:
            return seen_delta and seen_index and _skip_ws(p, i, n) == n


class ConverseStreamTranslator(_Pure):
    """Event stream messages in, ``chat.completion.chunk`` payloads out (native).

    Same constructor, properties and payload bytes as the pure twin it extends.
    """

    def feed(self, message) -> list:
        """Translate one event stream message."""
        out = _fast(self, message)
        if out is None:
            return _Pure.feed(self, message)
        return out


cdef object _fast(object self, object message):
    """The payload of a plain text or tool-input delta, or None for the pure path."""
    cdef Delta d
    cdef const unsigned char* p
    cdef PyObject* found
    cdef bytes data
    if (self.done or self.error is not None or not self._started
            or message.kind != _EVENT or message.event != _DELTA):
        return None
    payload = message.payload
    if type(payload) is not bytes:
        return None
    data = <bytes>payload
    p = <const unsigned char*>PyBytes_AS_STRING(data)
    d.kind = NO_KIND
    d.escaped = 0
    d.start = d.end = 0
    if not _scan(p, PyBytes_GET_SIZE(data), &d) or d.end - d.start == 2:  # "" writes nothing
        return None
    writer = self.writer
    if d.kind == TEXT:
        if self.json_tool is not None:
            return None
        splice = writer._text_splice
    elif self._json_block is not None and self._json_block == d.index:
        splice = writer._text_splice
    else:
        found = PyDict_GetItem(self._tools, d.index)
        if found == NULL:
            return None
        splice = writer._argument_splices.get(<object>found)
    if splice is None:
        return None  # the first chunk of its kind: the pure twin builds the splice
    payload = _spliced(splice, data, &d)
    return None if payload is None else [payload]
