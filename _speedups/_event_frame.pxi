# Shared by the native event stream readers (``include "_event_frame.pxi"``): CRC32 with zlib's
# polynomial, eight bytes a step (slicing-by-8), over bytes already in memory, the big-endian
# word reader the event stream prelude needs, the prelude and message checks, and ``_Reader``,
# the state a reader keeps between calls. Each includer fills its own table.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t
from libc.string cimport memcmp

from modelmux.codec import _eventstream_py as _pure
from modelmux.codec._eventstream_py import EventStreamError

cdef enum:
    CACHED_HEADERS = 64
    PRELUDE = 12
    OVERHEAD = 16  # the prelude and the message CRC

assert (PRELUDE, OVERHEAD) == (_pure.PRELUDE, _pure.OVERHEAD)

cdef uint32_t _TABLE[8][256]


cdef void _fill_table() noexcept:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = i
        for k in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
        _TABLE[0][i] = c
    for i in range(256):
        for k in range(1, 8):
            _TABLE[k][i] = (_TABLE[k - 1][i] >> 8) ^ _TABLE[0][_TABLE[k - 1][i] & 0xFF]


_fill_table()


cdef inline uint32_t _le32(const unsigned char* p) noexcept:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint32_t _be32(const unsigned char* p) noexcept:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef uint32_t _crc32(const unsigned char* p, Py_ssize_t n) noexcept:
    """``zlib.crc32(p[:n])``, eight bytes a step (slicing-by-8)."""
    cdef uint32_t crc = 0xFFFFFFFF, one, two
    while n >= 8:
        one = _le32(p) ^ crc
        two = _le32(p + 4)
        crc = (_TABLE[7][one & 0xFF] ^ _TABLE[6][(one >> 8) & 0xFF]
               ^ _TABLE[5][(one >> 16) & 0xFF] ^ _TABLE[4][one >> 24]
               ^ _TABLE[3][two & 0xFF] ^ _TABLE[2][(two >> 8) & 0xFF]
               ^ _TABLE[1][(two >> 16) & 0xFF] ^ _TABLE[0][two >> 24])
        p += 8
        n -= 8
    while n > 0:
        crc = (crc >> 8) ^ _TABLE[0][(crc ^ p[0]) & 0xFF]
        p += 1
        n -= 1
    return crc ^ 0xFFFFFFFF


cdef inline Py_ssize_t _checked_total(const unsigned char* p, Py_ssize_t limit) except -1:
    """The length the prelude at ``p`` declares, once its CRC and lengths are checked."""
    cdef Py_ssize_t total = _be32(p), header_len = _be32(p + 4)
    if _crc32(p, 8) != _be32(p + 8):
        raise EventStreamError("event stream prelude CRC mismatch")
    if total < OVERHEAD or header_len > total - OVERHEAD:
        raise EventStreamError(f"event stream lengths are impossible: total {total},"
                               f" headers {header_len}")
    if total > limit:
        raise EventStreamError(f"event stream message of {total} bytes is over the "
                               f"{limit}-byte limit")
    return total


cdef inline int _check_message(const unsigned char* p, Py_ssize_t total) except -1:
    """Raise unless the whole message at ``p`` ends in its own CRC."""
    if _crc32(p, total - 4) != _be32(p + total - 4):
        raise EventStreamError("event stream message CRC mismatch")
    return 0


cdef inline Py_ssize_t _header_len(const unsigned char* p, Py_ssize_t have, Py_ssize_t limit,
                                   Py_ssize_t* total) except -2:
    """The header length of the message at ``p`` once all ``total`` bytes of it are among the
    ``have`` and both CRCs check; -1 while it is incomplete (``total`` is known then)."""
    total[0] = _checked_total(p, limit)
    if have < total[0]:
        return -1
    _check_message(p, total[0])
    return _be32(p + 4)


cdef inline object _with_pending(bytearray pending, object data, Py_ssize_t need):
    """``data`` after the bytes held of an unfinished message, as ``bytes``; None while the
    held message is still short of ``need`` bytes (``data`` is then held too)."""
    if len(pending):
        pending += data
        if len(pending) < need:
            return None
        buf = bytes(pending)
        del pending[:]
        return buf
    return data if type(data) is bytes else bytes(data)


cdef class _Reader:
    """What a native event stream reader keeps between calls: the bytes held of an unfinished
    message, the error to raise again, and each header section parsed once per stream."""

    cdef bytearray _pending
    cdef Py_ssize_t _need
    cdef object _error
    cdef dict _cache  # raw header section -> what ``_parse`` made of it
    cdef bytes _last_raw
    cdef object _last  # what ``_parse`` made of the section read last

    def __cinit__(self) -> None:
        self._pending = bytearray()
        self._need = 0
        self._cache = {}

    @property
    def pending(self) -> int:
        """Bytes held of a message not complete yet."""
        return len(self._pending)

    cdef object _parse(self, bytes raw):
        """What the reader keeps of a header section (each includer says)."""
        raise NotImplementedError

    cdef object _section(self, const unsigned char* raw, Py_ssize_t size):
        """``_parse`` of this header section; a run of equal sections costs one compare."""
        cdef bytes last = self._last_raw
        if (last is not None and PyBytes_GET_SIZE(last) == size
                and memcmp(PyBytes_AS_STRING(last), raw, <size_t>size) == 0):
            return self._last
        key = PyBytes_FromStringAndSize(<const char*>raw, size)
        known = self._cache.get(key)
        if known is None:
            known = self._parse(key)
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


cdef inline object _take(_Reader reader, object data):
    """The bytes to read now (those held, then ``data``); None while the held message is still
    short.

    Raises:
        EventStreamError: the error an earlier call met.
    """
    if reader._error is not None:
        raise reader._error
    return _with_pending(reader._pending, data, reader._need)


cdef inline int _hold(_Reader reader, bytes buf, Py_ssize_t at, Py_ssize_t total) except -1:
    """Keep ``buf[at:]``, the start of a message of ``total`` bytes (0 while unknown)."""
    if at < PyBytes_GET_SIZE(buf):
        reader._pending += buf[at:]
        reader._need = total
    return 0
