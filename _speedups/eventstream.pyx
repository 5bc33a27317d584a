# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.codec._eventstream_py.EventStreamDecoder``: the same decoder in C.

Preludes, lengths and both CRC32s (a table-driven CRC, the zlib polynomial) are read straight
from the received bytes; a header section equal to the previous one reuses its parsed headers
without a lookup. Headers are parsed, and every error is raised, by the pure module's code and
with its messages, so both twins give the same messages and the same errors for any split.
"""

from modelmux.codec._eventstream_py import MAX_MESSAGE, Message, parse_headers

__all__ = ["EventStreamDecoder"]

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


cdef class EventStreamDecoder(_Reader):
    """Bytes in, whole ``Message`` objects out; both CRCs are checked. See the pure twin."""

    cdef public Py_ssize_t max_message

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message

    def feed(self, data) -> list:
        """The messages ``data`` completes, in order.

        Raises:
            EventStreamError: a CRC mismatch, impossible lengths or an unknown header type.
        """
        cdef bytes buf
        cdef list out = []
        cdef const unsigned char* p
        cdef Py_ssize_t at = 0, end, total = 0, header_len, stop, body
        taken = _take(self, data)
        if taken is None:
            return out
        buf = taken
        p = <const unsigned char*>PyBytes_AS_STRING(buf)
        end = PyBytes_GET_SIZE(buf)
        try:
            while end - at >= PRELUDE:
                header_len = _header_len(p + at, end - at, self.max_message, &total)
                if header_len < 0:
                    break
                stop = at + total - 4
                body = at + PRELUDE + header_len
                known = self._section(p + at + PRELUDE, header_len)
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
        _hold(self, buf, at, total)
        return out

    cdef object _parse(self, bytes raw):
        """A payload-less ``Message`` for this header section."""
        return Message(parse_headers(raw), b"")
