# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.providers.invoke_stream``: the same relay, one pass per chunk.

The event stream is framed here (both CRC32s, the pure decoder's checks and messages), and an
ordinary ``chunk`` goes from the received bytes to ``event: <type>\\ndata: <json>\\n\\n`` in one
allocation: its ``PayloadPart`` is scanned for the ``bytes`` string, the base64 is decoded
straight into the output and the ``type`` is read off the event's leading member. A chunk the
relay must read (``message_*``, ``error``), any payload the scanner is unsure of, and every
exception go to the pure ``InvokeStreamRelay``, which this class extends, so both paths share
one state and give the same bytes (a hypothesis test compares them).
"""

from libc.string cimport memchr, memcpy

from modelmux.codec._eventstream_py import MAX_MESSAGE, Message, parse_headers
from modelmux.providers.invoke_stream import InvokeStreamRelay as _Pure

__all__ = ["InvokeStreamRelay"]

cdef enum:
    DATA_MAX = 65536  # larger events take the pure path
    SKIP = 0       # what a header section makes of its message
    CHUNK = 1
    EXCEPTION = 2

include "_event_frame.pxi"
include "_payload_part.pxi"

cdef unsigned char _DATA[DATA_MAX]
"""An event decoded before it is framed: used between two Python calls only (the GIL)."""

cdef str _START = "message_start"
cdef str _DELTA = "message_delta"
cdef str _STOP = "message_stop"
cdef str _ERROR = "error"


cdef inline object _watched(const unsigned char* t, Py_ssize_t n):
    """The pure twin's ``WATCHED`` name ``t[:n]`` is, or None."""
    if n == 13:
        if memcmp(t, b"message_start", 13) == 0:
            return _START
        if memcmp(t, b"message_delta", 13) == 0:
            return _DELTA
    elif n == 12:
        if memcmp(t, b"message_stop", 12) == 0:
            return _STOP
    elif n == 5 and memcmp(t, b"error", 5) == 0:
        return _ERROR
    return None


cdef inline Py_ssize_t _spaces(const unsigned char* h, Py_ssize_t i, Py_ssize_t n) noexcept:
    while i < n and (h[i] == 32 or h[i] == 9):
        i += 1
    return i


cdef Py_ssize_t _type_at(const unsigned char* h, Py_ssize_t n) noexcept:
    """Where the value of a leading ``"type"`` member starts in ``h[:n]`` (the pure twin's
    ``type_of`` reads the same member, compact or spaced), or -1."""
    cdef Py_ssize_t i
    if n < 1 or h[0] != 123:  # {
        return -1
    i = _spaces(h, 1, n)
    if n - i < 6 or memcmp(h + i, b'"type"', 6) != 0:
        return -1
    i = _spaces(h, i + 6, n)
    if i >= n or h[i] != 58:  # :
        return -1
    i = _spaces(h, i + 1, n)
    if i >= n or h[i] != 34:
        return -1
    return i + 1


cdef Py_ssize_t _event(const unsigned char* q, Py_ssize_t n, Py_ssize_t* t0,
                       Py_ssize_t* t1) noexcept:
    """Decode a chunk's payload ``q[:n]`` into ``_DATA``: its size, with its type at
    ``_DATA[t0:t1]`` (printable ASCII) and no line break in it; -1 for the pure path."""
    cdef Py_ssize_t size, t, start
    size = _part(q, n, _DATA, DATA_MAX)
    if size < 0:
        return -1
    start = t = _type_at(_DATA, size)
    if t < 0:
        return -1
    while t < size and _DATA[t] != 34:
        if _DATA[t] <= 0x20 or _DATA[t] >= 0x7F or _DATA[t] == 92:
            return -1
        t += 1
    if t >= size or t == start:
        return -1
    if memchr(_DATA, 10, <size_t>size) != NULL or memchr(_DATA, 13, <size_t>size) != NULL:
        return -1  # a line break would end the SSE event: the pure twin re-encodes
    t0[0] = start
    t1[0] = t
    return size


cdef bytes _frame(Py_ssize_t size, Py_ssize_t t0, Py_ssize_t t1):
    """``event: <type>\\ndata: <json>\\n\\n`` for the event in ``_DATA[:size]``."""
    cdef Py_ssize_t t = t1 - t0
    cdef bytes frame = PyBytes_FromStringAndSize(NULL, 7 + t + 7 + size + 2)
    cdef char* w = PyBytes_AS_STRING(frame)
    memcpy(w, b"event: ", 7)
    memcpy(w + 7, _DATA + t0, <size_t>t)
    memcpy(w + 7 + t, b"\ndata: ", 7)
    w += 14 + t
    memcpy(w, _DATA, <size_t>size)
    w[size] = 10
    w[size + 1] = 10
    return frame


cdef object _message(object known, bytes payload):
    cdef object message = Message.__new__(Message)
    message.headers = known.headers
    message.payload = payload
    message.kind = known.kind
    message.event = known.event
    return message


cdef class _Section:
    """A header section as the relay reads it: a payload-less ``Message`` and its role."""

    cdef object message
    cdef int role


cdef class _OnePass(_Reader):
    """The relay's framing state: the native decoder's, plus what each header section means."""

    cdef bint _seen            # relay._seen is set
    cdef bint _started         # relay._started is set
    cdef public bint done      # the relay is finished: nothing more is read

    cdef list feed_relay(self, object relay, object data):
        """``InvokeStreamRelay.feed``: the SSE frames ``data`` completes."""
        cdef bytes buf
        cdef list out = []
        cdef const unsigned char* p
        cdef Py_ssize_t at = 0, end, total = 0, header_len, stop, body, completed = 0
        cdef Py_ssize_t size, t0 = 0, t1 = 0
        cdef int role
        cdef _Section section
        if self.done:
            return out
        taken = _take(self, data)
        if taken is None:
            return out
        buf = taken
        p = <const unsigned char*>PyBytes_AS_STRING(buf)
        end = PyBytes_GET_SIZE(buf)
        try:
            while end - at >= PRELUDE:
                header_len = _header_len(p + at, end - at, MAX_MESSAGE, &total)
                if header_len < 0:
                    break
                stop = at + total - 4
                body = at + PRELUDE + header_len
                section = <_Section>self._section(p + at + PRELUDE, header_len)
                role = section.role
                completed += 1
                at += total
                total = 0
                if role == SKIP:
                    continue
                if role == CHUNK:
                    size = _event(p + body, stop - body, &t0, &t1)
                    if size >= 0:
                        name = _watched(_DATA + t0, t1 - t0)
                        if name is None:
                            if not self._seen:
                                relay._seen = self._seen = True
                            out.append(_frame(size, t0, t1))
                            continue
                        relay._event(name, PyBytes_FromStringAndSize(<const char*>_DATA, size),
                                     out)
                    else:
                        relay._chunk(PyBytes_FromStringAndSize(<const char*>p + body,
                                                               stop - body), out)
                else:
                    relay._exception(_message(section.message, PyBytes_FromStringAndSize(
                        <const char*>p + body, stop - body)), out)
                if relay._finished or relay.early_error is not None:
                    self.done = True
                    at = end  # the rest is never read
                    break
        except EventStreamError as exc:
            self._error = exc
            if not completed:
                raise
            at = end  # the messages before the bad one; the error comes next call
        _hold(self, buf, at, total)
        if out and not self._started:
            relay._started = self._started = True
        return out

    cdef object _parse(self, bytes raw):
        """SKIP, CHUNK or EXCEPTION for this header section's messages.

        Raises:
            EventStreamError: the headers are malformed (the pure decoder's message).
        """
        cdef _Section section = _Section.__new__(_Section)
        section.message = message = Message(parse_headers(raw), b"")
        if message.kind == "exception" or message.kind == "error":
            section.role = EXCEPTION
        elif message.event == "chunk":
            section.role = CHUNK
        else:
            section.role = SKIP
        return section


class InvokeStreamRelay(_Pure):
    """See the pure twin; ``feed`` frames and writes ordinary chunks in C, one pass each."""

    _Frames = _OnePass

    def feed(self, data: bytes) -> list[bytes]:
        """The SSE frames ``data`` completes (the pure twin's, when given a decoder).

        Raises:
            EventStreamError: the upstream event stream is malformed (a CRC, a length).
        """
        frames = self._frames
        if type(frames) is _OnePass:
            return (<_OnePass>frames).feed_relay(self, data)
        return _Pure.feed(self, data)

    def close(self) -> list[bytes]:
        """Raises: EventStreamError: the body ended inside a message."""
        out = _Pure.close(self)
        frames = self._frames
        if type(frames) is _OnePass:
            (<_OnePass>frames).done = self.finished
        return out
