# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.codec._eventstream_py.EventStreamDecoder``: the same decoder in C.

Preludes, lengths and both CRC32s (a table-driven CRC, the zlib polynomial) are read straight
from the received bytes; a header section equal to the previous one reuses its parsed headers
without a lookup. Headers are parsed, and every error is raised, by the pure module's code and
with its messages, so both twins give the same messages and the same errors for any split.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcmp

from modelmux.codec import _eventstream_py as _pure
from modelmux.codec._eventstream_py import MAX_MESSAGE
from modelmux.codec._eventstream_py import EventStreamError, Message, parse_headers

__all__ = ["EventStreamDecoder"]

cdef enum:
    CACHED_HEADERS = 64
    PRELUDE = 12
    OVERHEAD = 16  # the prelude and the message CRC

assert (PRELUDE, OVERHEAD) == (_pure.PRELUDE, _pure.OVERHEAD)

include "_event_frame.pxi"


def crc32(data: bytes) -> int:
    """The table CRC over ``data`` (tests compare it with ``zlib.crc32``)."""
    return _crc32(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef object _message(object headers, bytes payload, object kind, object event):
    cdef object message = Message.__new__(Message)
    message.headers = headers
    message.payload = payload
    message.kind = kind
    message.event = event
    return message


cdef class EventStreamDecoder:
    """Bytes in, whole ``Message`` objects out; both CRCs are checked. See the pure twin."""

    cdef public Py_ssize_t max_message
    cdef bytearray _pending
    cdef Py_ssize_t _need
    cdef object _error
    cdef dict _cache
    cdef bytes _last_raw
    cdef object _last

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._pending = bytearray()
        self._need = 0
        self._error = None
        self._cache = {}
        self._last_raw = None
        self._last = None

    @property
    def pending(self) -> int:
        """Bytes held of a message not complete yet."""
        return len(self._pending)

    def feed(self, data) -> list:
        """The messages ``data`` completes, in order.

        Raises:
            EventStreamError: a CRC mismatch, impossible lengths or an unknown header type.
        """
        cdef bytes buf
        cdef bytearray pending = self._pending
        cdef list out = []
        cdef const unsigned char* p
        cdef Py_ssize_t at = 0, end, total = 0, header_len, stop, body
        if self._error is not None:
            raise self._error
        taken = _with_pending(pending, data, self._need)
        if taken is None:
            return out
        buf = taken
        p = <const unsigned char*>PyBytes_AS_STRING(buf)
        end = PyBytes_GET_SIZE(buf)
        try:
            while end - at >= PRELUDE:
                total = _checked_total(p + at, self.max_message)
                if end - at < total:
                    break
                _check_message(p + at, total)
                header_len = _be32(p + at + 4)
                stop = at + total - 4
                body = at + PRELUDE + header_len
                known = self._known(p + at + PRELUDE, header_len)
                out.append(_message(known.headers,
                                    PyBytes_FromStringAndSize(<const char*>p + body, stop - body),
                                    known.kind, known.event))
                at += total
                total = 0
        except EventStreamError as exc:
            self._error = exc
            if not out:
                raise
            return out  # the messages before the bad one; the error comes next call
        if at < end:
            pending += buf[at:]
            self._need = total
        return out

    cdef object _known(self, const unsigned char* raw, Py_ssize_t size):
        """A payload-less ``Message`` for this header section, parsed once per stream."""
        cdef bytes last = self._last_raw
        if (last is not None and PyBytes_GET_SIZE(last) == size
                and memcmp(PyBytes_AS_STRING(last), raw, <size_t>size) == 0):
            return self._last
        key = PyBytes_FromStringAndSize(<const char*>raw, size)
        known = self._cache.get(key)
        if known is None:
            known = Message(parse_headers(key), b"")
            if len(self._cache) < CACHED_HEADERS:
                self._cache[key] = known
        self._last_raw = key
        self._last = known
        return known

    def close(self) -> None:
        """End of input.

        Raises:
            EventStreamError: the input ended inside a message, or an error is pending.
        """
        if self._error is not None:
            raise self._error
        if len(self._pending):
            self._error = EventStreamError(
                f"event stream ended inside a message ({len(self._pending)} bytes left over)")
            raise self._error
