# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.translate.messages_stream``: the same translator, a fused hot path.

A ``text_delta`` or ``input_json_delta`` event is scanned as bytes, and its JSON string is copied
verbatim between the chunk bytes the pure twin pre-encodes per stream, when that copy is exactly
what msgspec would write. Every other event, and any delta the scanner is unsure of, goes to the
pure ``MessagesStreamTranslator``, which this class extends, so both paths share one state.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject

from modelmux.translate.messages_stream import MessagesStreamTranslator as _Pure
from modelmux.translate.messages_stream import _State, anthropic_event_type

__all__ = ["MessagesStreamTranslator", "anthropic_event_type"]

cdef object _STREAMING = _State.STREAMING
cdef str _EVENT = "content_block_delta"
cdef str _TEXT = "text"
cdef str _TOOL = "tool"

cdef enum:
    NO_KIND = 0
    TEXT_DELTA = 1
    JSON_DELTA = 2
    FALLBACK = -1     # hand the event to the pure twin


include "_json_scan.pxi"


cdef Py_ssize_t _delta_object(
    const unsigned char* p, Py_ssize_t i, Py_ssize_t n, Delta* out
) noexcept:
    """Scan ``{"type": ..., "text"|"partial_json": ...}`` at ``p[i]``: its end, or -1."""
    cdef Py_ssize_t k0, k1 = 0, v0, v1
    cdef int seen_type = 0, seen_value = 0, value_key = NO_KIND
    cdef bint closed = False
    i = _skip_ws(p, i + 1, n)
    while True:
        k0 = i
        v0 = _key(p, k0, n, &k1)
        if v0 < 0 or p[v0] != 34:
            return -1
        if _is(p, k0, k1, "type", 4):
            if seen_type:
                return -1
            seen_type = 1
            v1 = _plain(p, v0, n)
            if v1 < 0:
                return -1
            if _is(p, v0, v1, "text_delta", 10):
                out.kind = TEXT_DELTA
            elif _is(p, v0, v1, "input_json_delta", 16):
                out.kind = JSON_DELTA
            else:
                return -1
        else:
            if _is(p, k0, k1, "text", 4):
                if value_key != NO_KIND:
                    return -1
                value_key = TEXT_DELTA
            elif _is(p, k0, k1, "partial_json", 12):
                if value_key != NO_KIND:
                    return -1
                value_key = JSON_DELTA
            else:
                return -1
            seen_value = 1
            v1 = _string(p, v0, n, &out.escaped)
            if v1 < 0:
                return -1
            out.start = v0
            out.end = v1
        i = _next_member(p, v1, n, &closed)
        if i < 0:
            return -1
        if closed:
            return i if seen_type and seen_value and value_key == out.kind else -1


cdef bint _scan(const unsigned char* p, Py_ssize_t n, bint need_type, Delta* out) noexcept:
    """Scan a whole content_block_delta event; False means the pure twin must take it.

    Keys other than type, index and delta, repeated keys, numbers other than plain non-negative
    integers, and anything after the object make it fall back.
    """
    cdef Py_ssize_t i, k0, k1 = 0, v0, v1
    cdef int seen_type = 0, seen_index = 0, seen_delta = 0
    cdef bint closed = False
    i = _skip_ws(p, 0, n)
    if i >= n or p[i] != 123:  # {
        return False
    i = _skip_ws(p, i + 1, n)
    while True:
        k0 = i
        v0 = _key(p, k0, n, &k1)
        if v0 < 0:
            return False
        if _is(p, k0, k1, "type", 4):
            if seen_type or p[v0] != 34:
                return False
            seen_type = 1
            v1 = _plain(p, v0, n)
            if v1 < 0 or (need_type and not _is(p, v0, v1, "content_block_delta", 19)):
                return False
        elif _is(p, k0, k1, "index", 5):
            if seen_index:
                return False
            seen_index = 1
            v1 = _index(p, v0, n, &out.index)
        elif _is(p, k0, k1, "delta", 5):
            if seen_delta or p[v0] != 123:
                return False
            seen_delta = 1
            v1 = _delta_object(p, v0, n, out)
        else:
            return False
        if v1 < 0:
            return False
        i = _next_member(p, v1, n, &closed)
        if i < 0:
            return False
        if closed:
            return (seen_index and seen_delta and (seen_type or not need_type)
                    and _skip_ws(p, i, n) == n)


class MessagesStreamTranslator(_Pure):
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` payloads out (native).

    Same constructor, properties and payload bytes as the pure twin it extends.
    """

    def feed(self, event: str, data: bytes) -> list[bytes]:
        """Translate one SSE event (its ``event:`` name and ``data:`` bytes) into payloads."""
        out = _fast(self, event, data)
        if out is None:
            return _Pure.feed(self, event, data)
        return out


cdef object _fast(object self, object event, object data):
    """The payloads of a plain text or arguments delta, or None for the pure path."""
    cdef Delta d
    cdef const unsigned char* p
    cdef PyObject* found
    cdef tuple splice
    if type(data) is not bytes or self._state is not _STREAMING:
        return None
    if event != _EVENT and event != "":
        return None
    p = <const unsigned char*>PyBytes_AS_STRING(data)
    d.kind = NO_KIND
    d.escaped = 0
    d.start = d.end = 0
    if not _scan(p, PyBytes_GET_SIZE(data), event == "", &d):
        return None
    found = PyDict_GetItem(self._blocks, d.index)
    if found == NULL:
        return None
    block = <object>found
    if block.kind != (_TEXT if d.kind == TEXT_DELTA else _TOOL):
        return None
    if d.end - d.start == 2:  # ""
        if d.kind == JSON_DELTA:
            block.saw_input = True
        return []
    if d.kind == TEXT_DELTA:
        splice = self._text_splice
    else:
        splice = self._arguments_splices.get(block.tool_index)
        if splice is None:
            return None  # the first arguments chunk of a call: the pure twin builds the splice
    payload = _spliced(splice, data, &d)
    if payload is None:
        return None
    if d.kind == JSON_DELTA:
        block.saw_input = True
    return [payload]
