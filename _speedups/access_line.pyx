# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.observability._access_line_py``: the access line written into one
C buffer, in one pass over the record's and the exchange's fields.

It formats the line an ordinary request makes: every text value an ASCII ``str``, every count
an ``int`` of 62 bits or less, durations not negative, the cost a float, an int or None. Any
other line (a non-ASCII model name or path, a None request id, a bool where a count belongs) is
handed to the pure twin, whose output is the reference; a hypothesis test compares the twins.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memcmp
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

import time as _time

from modelmux.observability._access_line_py import CLIENT_CLOSED, MAX_TEXT
from modelmux.observability._access_line_py import AccessLine as _Pure

__all__ = ["AccessLine"]


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1


cdef enum:
    STACK = 4096  # bytes of line formatted on the C stack; a longer line moves to the heap

cdef long long LIMIT = 1LL << 62  # larger counts and clocks go to the pure twin: no overflow
cdef Py_ssize_t _MAX_TEXT = MAX_TEXT

include "_text_buffer.pxi"

cdef bint PLAIN_CHAR[256]  # may stand bare in the message: printable ASCII but space " = \\


cdef void _fill_plain() noexcept:
    cdef int c
    for c in range(256):
        PLAIN_CHAR[c] = BARE[c] and c != 32 and c != 61


_fill_plain()

cdef enum:
    ABSENT = 0  # None: "-" in the message, null in JSON
    PLAIN = 1   # written bare in the message
    QUOTED = 2  # JSON-quoted in the message


cdef struct Text:
    const char* data
    Py_ssize_t size
    int state


cdef struct Number:
    long long value
    bint present


cdef struct Fields:
    Text request_id, client, key, method, path, model, provider, mode, trace_id, cost
    long long status, latency, received, sent
    Number attempts, tokens_in, tokens_out, ttft, overhead
    bint completed


cdef int _put_text(Buf* b, Text* t) except -1:
    """A string as the logfmt message writes it."""
    if t.state == ABSENT:
        return _lit(b, "-")
    if t.state == PLAIN:
        return _put(b, t.data, t.size)
    _lit(b, '"')
    _put_escaped(b, t.data, t.size)
    return _lit(b, '"')


cdef int _put_json(Buf* b, Text* t) except -1:
    """A string as ``JsonFormatter`` writes it (escaping leaves a plain one as it is)."""
    if t.state == ABSENT:
        return _lit(b, "null")
    _lit(b, '"')
    if t.state == PLAIN:
        _put(b, t.data, t.size)
    else:
        _put_escaped(b, t.data, t.size)
    return _lit(b, '"')


cdef int _put_number(Buf* b, Number* n, bint json, bint ms) except -1:
    if not n.present:
        return _lit(b, "null") if json else _lit(b, "-")
    return _put_ms(b, n.value) if ms else _put_int(b, n.value)


cdef bint _text(object value, Text* t, Py_ssize_t limit):
    """Fill ``t`` from ``value`` (None or an ASCII ``str``, cut to ``limit``); False when the
    pure twin must format the line."""
    cdef Py_ssize_t i, n
    cdef unsigned char c
    if value is None:
        t.state = ABSENT
        return True
    if not PyUnicode_CheckExact(value) or not PyUnicode_IS_ASCII(value):
        return False
    n = min(PyUnicode_GET_LENGTH(value), limit)
    t.data, t.size = <const char*>PyUnicode_DATA(value), n
    t.state = PLAIN if n else QUOTED
    for i in range(n):
        if not PLAIN_CHAR[<unsigned char>t.data[i]]:
            t.state = QUOTED
            break
    return True


cdef bint _int(object value, long long* out):
    """An exact ``int`` within ``LIMIT`` either way."""
    cdef int overflow = 0
    if not PyLong_CheckExact(value):
        return False
    out[0] = PyLong_AsLongLongAndOverflow(value, &overflow)
    return not overflow and -LIMIT < out[0] < LIMIT


cdef bint _number(object value, Number* n):
    n.present = value is not None
    return not n.present or _int(value, &n.value)


cdef bint _streamed(Text* mode):
    """``record.mode in STREAMED`` (standard, buffered)."""
    if mode.state == ABSENT or mode.size != 8:
        return False
    return memcmp(mode.data, b"standard", 8) == 0 or memcmp(mode.data, b"buffered", 8) == 0


cdef class AccessLine:
    """See the pure twin; the same API and the same text."""

    cdef object _pure
    cdef bytes _text_prefix, _json_prefix
    cdef bint _ascii
    cdef long long _second
    cdef char _stamp[32]
    cdef Py_ssize_t _stamp_size

    def __init__(self, str name, pid):
        self._pure = _Pure(name, pid)
        self._ascii = name.isascii()
        if self._ascii:
            self._text_prefix = self._pure.text_prefix.encode("ascii")
            self._json_prefix = self._pure.json_prefix.encode("ascii")
        self._second = -1
        self._stamp_size = 0

    def text(self, record, exchange, now_ns, wall_ns=None):
        """``TEXT_FORMAT`` with the logfmt message, and its newline."""
        line = self._line(record, exchange, now_ns, wall_ns, False)
        return self._pure.text(record, exchange, now_ns, wall_ns) if line is None else line

    def json(self, record, exchange, now_ns, wall_ns=None):
        """``JsonFormatter``'s keys (time, level, logger, pid, message), then every field."""
        line = self._line(record, exchange, now_ns, wall_ns, True)
        return self._pure.json(record, exchange, now_ns, wall_ns) if line is None else line

    cdef bint _stamp_at(self, wall_ns, long long* millis) except -1:
        """The date and time of ``wall_ns`` (now when None) in ``_stamp``; False to hand over."""
        cdef timespec now
        cdef long long ns = 0, second
        cdef bytes text
        if wall_ns is None:
            clock_gettime(CLOCK_REALTIME, &now)
            ns = <long long>now.tv_sec * 1_000_000_000 + now.tv_nsec
        elif not _int(wall_ns, &ns) or ns < 0:
            return False
        second = ns // 1_000_000_000
        millis[0] = ns // 1_000_000 % 1000
        if second != self._second:
            text = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(second)).encode("ascii")
            if PyBytes_GET_SIZE(text) > 28:
                return False
            memcpy(self._stamp, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))
            self._stamp_size = PyBytes_GET_SIZE(text)
            self._second = second
        return True

    cdef object _line(self, record, exchange, now_ns_obj, wall_ns, bint json):
        cdef Fields f
        cdef long long now_ns, started_ns, head_ns, millis
        cdef char stack[STACK]
        cdef char scratch[STACK]
        cdef Buf out
        cdef Buf msg
        if not self._ascii:
            return None
        stats = record.stats
        started = exchange.started
        if started:
            if not _int(exchange.status, &f.status):
                return None
        else:
            f.status = CLIENT_CLOSED
        mode = record.mode
        model = record.model
        overhead = record.overhead_ns
        span = record.span
        request_id, client, key = record.request_id, exchange.client, record.key
        method, path, provider, cost = exchange.method, exchange.path, record.provider, record.cost_usd
        trace_id = span.trace_id if span is not None else None
        if not (_text(mode, &f.mode, LIMIT) and _text(model, &f.model, _MAX_TEXT)
                and _text(request_id, &f.request_id, LIMIT) and _text(client, &f.client, LIMIT)
                and _text(key, &f.key, LIMIT) and _text(method, &f.method, LIMIT)
                and _text(path, &f.path, LIMIT) and _text(provider, &f.provider, LIMIT)
                and _text(trace_id, &f.trace_id, LIMIT)):
            return None
        if (f.request_id.state == ABSENT or f.client.state == ABSENT
                or f.method.state == ABSENT or f.path.state == ABSENT):
            return None  # the pure twin writes "None" for these when the rest is plain
        f.ttft.present = False
        if f.status < 400:
            head = exchange.head_ns
            if head and _streamed(&f.mode):
                if not (_int(head, &head_ns) and _int(exchange.started_ns, &started_ns)):
                    return None
                f.ttft.value, f.ttft.present = head_ns - started_ns, True
                if f.ttft.value < 0:
                    return None
        if stats is None:
            f.attempts.present = f.tokens_in.present = f.tokens_out.present = False
        else:
            tokens = stats.tokens
            if not _number(stats.attempts, &f.attempts):
                return None
            if tokens is None:
                f.tokens_in.present = f.tokens_out.present = False
            elif not (PyTuple_CheckExact(tokens) and len(<tuple>tokens) == 2
                      and _number((<tuple>tokens)[0], &f.tokens_in)
                      and _number((<tuple>tokens)[1], &f.tokens_out)):
                return None
        if cost is None:
            f.cost.state = ABSENT
        elif PyFloat_CheckExact(cost) or PyLong_CheckExact(cost):
            cost = str(cost)
            f.cost.data, f.cost.size = <const char*>PyUnicode_DATA(cost), PyUnicode_GET_LENGTH(cost)
            f.cost.state = PLAIN
        else:
            return None
        if not (_int(now_ns_obj, &now_ns) and _int(exchange.started_ns, &started_ns)
                and _number(overhead, &f.overhead)
                and _int(exchange.bytes_received, &f.received)
                and _int(exchange.bytes_sent, &f.sent)):
            return None
        f.latency = now_ns - started_ns
        if f.latency < 0 or (f.overhead.present and f.overhead.value < 0):
            return None
        f.completed = exchange.ended
        if not self._stamp_at(wall_ns, &millis):
            return None
        out.data, out.size, out.cap, out.heap = stack, 0, STACK, False
        msg.data, msg.size, msg.cap, msg.heap = scratch, 0, STACK, False
        try:
            if json:
                _lit(&out, '{"time": "')
                self._put_stamp(&out, millis)
                _put(&out, PyBytes_AS_STRING(self._json_prefix), PyBytes_GET_SIZE(self._json_prefix))
                _fields(&msg, &f, TEXT)
                _lit(&out, '"')
                if _any_quoted(&f):
                    _put_escaped(&out, msg.data, msg.size)
                else:  # bare values, numbers, "-": nothing to escape
                    _put(&out, msg.data, msg.size)
                _lit(&out, '"')
                _fields(&out, &f, JSON)
            else:
                self._put_stamp(&out, millis)
                _put(&out, PyBytes_AS_STRING(self._text_prefix), PyBytes_GET_SIZE(self._text_prefix))
                _fields(&out, &f, TEXT)
                _lit(&out, "\n")
            line = PyUnicode_New(out.size, 127)
            memcpy(PyUnicode_DATA(line), out.data, out.size)
            return line
        finally:
            if out.heap:
                PyMem_Free(out.data)
            if msg.heap:
                PyMem_Free(msg.data)

    cdef int _put_stamp(self, Buf* b, long long millis) except -1:
        cdef char ms[4]
        _put(b, self._stamp, self._stamp_size)
        ms[0] = b','
        ms[1] = <char>(48 + millis // 100)
        ms[2] = <char>(48 + millis // 10 % 10)
        ms[3] = <char>(48 + millis % 10)
        return _put(b, ms, 4)


cdef bint _any_quoted(Fields* f):
    return (f.request_id.state == QUOTED or f.client.state == QUOTED or f.key.state == QUOTED
            or f.method.state == QUOTED or f.path.state == QUOTED or f.model.state == QUOTED
            or f.provider.state == QUOTED or f.mode.state == QUOTED
            or f.trace_id.state == QUOTED)


cdef struct AsText:
    char unused


cdef struct AsJson:
    char unused


ctypedef fused Style:  # which writer ``_fields`` is; Cython builds one copy of it per style
    AsText
    AsJson

cdef AsText TEXT
cdef AsJson JSON


cdef inline int _key(Buf* b, Style style, const char* text_key, const char* json_key) except -1:
    if Style is AsJson:
        return _lit(b, json_key)
    else:
        return _lit(b, text_key)


cdef inline int _put_str(Buf* b, Text* t, Style style) except -1:
    if Style is AsJson:
        return _put_json(b, t)
    else:
        return _put_text(b, t)


cdef int _fields(Buf* b, Fields* f, Style style) except -1:
    """Every field in order: as ``TEXT`` the logfmt message (``request_id=... trace_id=...``),
    as ``JSON`` the members after ``message``, then the closing brace and newline."""
    _key(b, style, "request_id=", ', "request_id": ')
    _put_str(b, &f.request_id, style)
    _key(b, style, " client=", ', "client": ')
    _put_str(b, &f.client, style)
    _key(b, style, " key=", ', "key": ')
    _put_str(b, &f.key, style)
    _key(b, style, " method=", ', "method": ')
    _put_str(b, &f.method, style)
    _key(b, style, " path=", ', "path": ')
    _put_str(b, &f.path, style)
    _key(b, style, " status=", ', "status": ')
    _put_int(b, f.status)
    _key(b, style, " model=", ', "model": ')
    _put_str(b, &f.model, style)
    _key(b, style, " provider=", ', "provider": ')
    _put_str(b, &f.provider, style)
    _key(b, style, " stream_mode=", ', "stream_mode": ')
    _put_str(b, &f.mode, style)
    _key(b, style, " attempts=", ', "attempts": ')
    _put_number(b, &f.attempts, Style is AsJson, False)
    _key(b, style, " tokens_in=", ', "tokens_in": ')
    _put_number(b, &f.tokens_in, Style is AsJson, False)
    _key(b, style, " tokens_out=", ', "tokens_out": ')
    _put_number(b, &f.tokens_out, Style is AsJson, False)
    _key(b, style, " cost_usd=", ', "cost_usd": ')
    if Style is AsText:
        _put_text(b, &f.cost)
    elif f.cost.state == ABSENT:
        _lit(b, "null")
    else:
        _put(b, f.cost.data, f.cost.size)
    _key(b, style, " latency_ms=", ', "latency_ms": ')
    _put_ms(b, f.latency)
    _key(b, style, " ttft_ms=", ', "ttft_ms": ')
    _put_number(b, &f.ttft, Style is AsJson, True)
    _key(b, style, " overhead_ms=", ', "overhead_ms": ')
    _put_number(b, &f.overhead, Style is AsJson, True)
    _key(b, style, " bytes_received=", ', "bytes_received": ')
    _put_int(b, f.received)
    _key(b, style, " bytes_sent=", ', "bytes_sent": ')
    _put_int(b, f.sent)
    if f.completed:
        _key(b, style, " completed=true", ', "completed": true')
    else:
        _key(b, style, " completed=false", ', "completed": false')
    _key(b, style, " trace_id=", ', "trace_id": ')
    _put_str(b, &f.trace_id, style)
    if Style is AsJson:
        return _lit(b, "}\n")
    else:
        return 0
