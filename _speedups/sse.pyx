# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.codec._sse_py``: the SSE decoder and encoders, sans-I/O.

Same API and results as the pure twin (WHATWG HTML "9.2 Server-sent events", "Interpreting an
event stream"). Lines are found with memchr over the bytes buffer and fields are matched with
memcmp, so no Python object is made per byte; ``Event`` and ``SSEProtocolError`` come from
``modelmux.codec.sse_common``.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp, memcpy

import operator
import re

from modelmux.codec.sse_common import Event, SSEProtocolError

__all__ = [
    "DONE",
    "Event",
    "SSEDecoder",
    "SSEProtocolError",
    "encode_comment",
    "encode_data",
    "encode_event",
]

DONE = b"data: [DONE]\n\n"
_LINE_END = re.compile(rb"\r\n|\r|\n")

cdef enum:
    LF = 10
    CR = 13
    COLON = 58
    SPACE = 32

cdef str _MESSAGE = "message"
cdef Py_ssize_t _MAX_RETRY_DIGITS = 18  # longer values are ignored, as in the pure twin


cdef inline Py_ssize_t _find(
    const unsigned char* p, Py_ssize_t start, Py_ssize_t n, int c
) noexcept:
    """Index of byte ``c`` in ``p[start:n]``, or ``n``."""
    cdef const void* hit = memchr(p + start, c, <size_t>(n - start))
    if hit == NULL:
        return n
    return <const unsigned char*>hit - p


cdef class SSEDecoder:
    """Incremental SSE decoder: ``feed(bytes) -> list[Event]``, then ``close()`` at end of input.

    Bytes may be split anywhere. After ``close()``, ``feed()`` raises ``RuntimeError`` (a bug in
    the caller, as in h11); after an ``SSEProtocolError`` every later call raises it again.
    """

    cdef Py_ssize_t _max_line
    cdef bytearray _tail          # the unterminated last line
    cdef bint _skip_lf            # the previous feed ended with a CR, so an LF now is its pair
    cdef bint _at_start           # a leading BOM may still arrive
    cdef bint _closed
    cdef bint _failed
    cdef object _data             # None, one bytes value, or a list of them
    cdef str _event               # the event type buffer
    cdef bytes _name_raw          # last event type seen on the wire, and its decoding (a cache)
    cdef str _name
    cdef str _id_buffer
    cdef str _last_event_id
    cdef object _block_retry
    cdef object _retry

    def __init__(self, Py_ssize_t max_line=1 << 20):
        """Raises: ValueError when ``max_line`` is negative."""
        if max_line < 0:
            raise ValueError("max_line must be >= 0")
        self._max_line = max_line
        self._tail = bytearray()
        self._skip_lf = False
        self._at_start = True
        self._closed = False
        self._failed = False
        self._data = None
        self._event = ""
        self._name_raw = b""
        self._name = ""
        self._id_buffer = ""
        self._last_event_id = ""
        self._block_retry = None
        self._retry = None

    @property
    def last_event_id(self):
        """The last event ID string (for a reconnect's ``Last-Event-ID``); "" when none."""
        return self._last_event_id

    @property
    def retry(self):
        """The latest reconnection time in ms the stream asked for, if any."""
        return self._retry

    def feed(self, data):
        """Decode the next piece of the stream; return the events it completed.

        Raises:
            SSEProtocolError: a line is longer than ``max_line``, or the decoder already failed.
            RuntimeError: called after ``close()``.
        """
        if self._failed:
            raise SSEProtocolError("SSE decoder already failed")
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() called after close()")
        if type(data) is not bytes:
            data = bytes(memoryview(data))
        cdef list out = []
        try:
            self._split(<bytes>data, out)
        except SSEProtocolError:
            self._failed = True
            raise
        return out

    def close(self):
        """End of input: discard an unterminated line or event (spec) and return what remains.

        That is always ``[]`` here, since a CR ends its line without waiting for the next feed;
        the list keeps the ``feed`` shape. Calling it again returns ``[]``.

        Raises:
            SSEProtocolError: the decoder already failed.
        """
        if self._failed:
            raise SSEProtocolError("SSE decoder already failed")
        self._closed = True
        return []

    cdef int _split(self, bytes data, list out) except -1:
        """Stage 1: find the line ends in ``data`` and hand each line to ``_line``."""
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef const unsigned char* p
        cdef Py_ssize_t pos = 0, end, next_lf = -1, next_cr = -1, tail_len
        if n == 0:
            return 0
        if self._at_start:
            if PyByteArray_GET_SIZE(self._tail):
                data = bytes(self._tail) + data
                n = PyBytes_GET_SIZE(data)
                PyByteArray_Resize(self._tail, 0)
            p = <const unsigned char*>PyBytes_AS_STRING(data)
            if n < 3 and p[0] == 0xEF and (n < 2 or p[1] == 0xBB):
                self._tail += data  # a BOM might be arriving byte by byte
                return 0
            self._at_start = False
            if n >= 3 and p[0] == 0xEF and p[1] == 0xBB and p[2] == 0xBF:
                pos = 3
        p = <const unsigned char*>PyBytes_AS_STRING(data)
        if self._skip_lf and pos < n and p[pos] == LF:
            pos += 1
        self._skip_lf = False
        while pos < n:
            if next_lf < pos:
                next_lf = _find(p, pos, n, LF)
            if next_cr < pos:
                next_cr = _find(p, pos, n, CR)
            end = next_lf if next_lf < next_cr else next_cr
            if end == n:
                break
            tail_len = PyByteArray_GET_SIZE(self._tail)
            if tail_len:
                self._grow_tail(p + pos, end - pos)
                self._line(<const unsigned char*>PyByteArray_AS_STRING(self._tail), 0,
                           tail_len + end - pos, out)
                PyByteArray_Resize(self._tail, 0)
            else:
                if end - pos > self._max_line:
                    self._too_long()
                self._line(p, pos, end, out)
            pos = end + 1
            if p[end] == CR:
                if pos == n:
                    self._skip_lf = True  # a CR ends its line now; its LF may start the next feed
                elif p[pos] == LF:
                    pos += 1
        if pos < n:
            self._grow_tail(p + pos, n - pos)
        return 0

    cdef int _grow_tail(self, const unsigned char* src, Py_ssize_t size) except -1:
        cdef Py_ssize_t old = PyByteArray_GET_SIZE(self._tail)
        if old + size > self._max_line:
            self._too_long()
        PyByteArray_Resize(self._tail, old + size)
        memcpy(PyByteArray_AS_STRING(self._tail) + old, src, <size_t>size)
        return 0

    cdef int _too_long(self) except -1:
        raise SSEProtocolError(f"SSE line longer than {self._max_line} bytes")

    cdef int _line(self, const unsigned char* p, Py_ssize_t s, Py_ssize_t e, list out) except -1:
        """Stage 2: one line (``p[s:e]``, no terminator) against the spec's field rules."""
        cdef Py_ssize_t name_end, v, i
        cdef long long retry = 0
        cdef const unsigned char* colon
        cdef bytes value
        if s == e:
            return self._dispatch(out)
        if p[s] == COLON:
            return 0  # comment
        colon = <const unsigned char*>memchr(p + s, COLON, <size_t>(e - s))
        if colon == NULL:
            name_end = e
            v = e
        else:
            name_end = colon - p
            v = name_end + 1
            if v < e and p[v] == SPACE:
                v += 1
        name_end -= s
        if name_end == 4 and memcmp(p + s, b"data", 4) == 0:
            value = PyBytes_FromStringAndSize(<const char*>p + v, e - v)
            if self._data is None:
                self._data = value
            elif type(self._data) is list:
                (<list>self._data).append(value)
            else:
                self._data = [self._data, value]
        elif name_end == 5 and memcmp(p + s, b"event", 5) == 0:
            self._event = self._event_name(p + v, e - v)
        elif name_end == 2 and memcmp(p + s, b"id", 2) == 0:
            if memchr(p + v, 0, <size_t>(e - v)) == NULL:
                self._id_buffer = (<const char*>p)[v:e].decode("utf-8", "replace")
        elif name_end == 5 and memcmp(p + s, b"retry", 5) == 0:
            if v == e or e - v > _MAX_RETRY_DIGITS:
                return 0
            for i in range(v, e):
                if p[i] < 48 or p[i] > 57:
                    return 0
                retry = retry * 10 + (p[i] - 48)
            self._retry = self._block_retry = retry
        return 0

    cdef str _event_name(self, const unsigned char* p, Py_ssize_t size):
        """Decode an event type, reusing the last decoding when the bytes repeat (they do)."""
        if size == PyBytes_GET_SIZE(self._name_raw) and memcmp(
            p, PyBytes_AS_STRING(self._name_raw), <size_t>size
        ) == 0:
            return self._name
        self._name_raw = PyBytes_FromStringAndSize(<const char*>p, size)
        self._name = self._name_raw.decode("utf-8", "replace")
        return self._name

    cdef int _dispatch(self, list out) except -1:
        cdef object data = self._data
        self._last_event_id = self._id_buffer
        if data is not None:
            if type(data) is list:
                data = b"\n".join(<list>data)
            out.append(Event(
                self._event or _MESSAGE, data, self._last_event_id or None, self._block_retry
            ))
            self._data = None
        self._event = ""
        self._block_retry = None
        return 0


cdef bytes _single_line(str value, str what):
    if "\r" in value or "\n" in value:
        raise ValueError(f"SSE {what} must not contain CR or LF")
    return value.encode("utf-8")


def encode_event(data, event=None, id=None, retry=None):
    """Encode one event; any line end inside ``data`` becomes another ``data:`` line.

    SSE cannot carry a CR inside data, so CR, LF and CRLF in ``data`` all decode back as LF.

    Raises:
        ValueError: ``event`` or ``id`` holds CR/LF, ``id`` holds NUL, or ``retry`` is negative.
    """
    cdef list parts = []
    if event is not None:
        parts += (b"event: ", _single_line(event, "event"), b"\n")
    if id is not None:
        if "\x00" in id:
            raise ValueError("SSE id must not contain NUL")
        parts += (b"id: ", _single_line(id, "id"), b"\n")
    if retry is not None:
        retry = operator.index(retry)
        if retry < 0:
            raise ValueError("SSE retry must be >= 0")
        parts += (b"retry: ", str(retry).encode("ascii"), b"\n")
    if isinstance(data, str):
        data = (<str>data).encode("utf-8")
    for line in _LINE_END.split(data):
        parts += (b"data: ", line, b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def encode_data(payload):
    """Encode one ``data:`` event (one JSON chunk): the per-chunk hot path."""
    cdef bytes raw = payload if type(payload) is bytes else bytes(memoryview(payload))
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef const char* src = PyBytes_AS_STRING(raw)
    cdef bytes out
    cdef char* dst
    if memchr(src, LF, <size_t>n) != NULL or memchr(src, CR, <size_t>n) != NULL:
        return encode_event(raw)
    out = PyBytes_FromStringAndSize(NULL, n + 8)
    dst = PyBytes_AS_STRING(out)
    memcpy(dst, b"data: ", 6)
    memcpy(dst + 6, src, <size_t>n)
    dst[n + 6] = LF
    dst[n + 7] = LF
    return out


def encode_comment(str text=""):
    """Encode a comment (a keep-alive); clients ignore it. A blank line follows it.

    The blank line keeps naive clients that split on blank lines from gluing it to an event.
    """
    if not text:
        return b":\n\n"
    lines = _LINE_END.split(text.encode("utf-8"))
    return b"".join([b": " + line + b"\n" for line in lines]) + b"\n"
