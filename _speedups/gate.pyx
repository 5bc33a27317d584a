# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.pipeline._gate_py``: a limited caller's per-request work with the
in-process store, in C.

The same API and the same results. The buckets are charged by their own code: native ones
through ``DeploymentLimits.grant`` and ``.fix`` (``modelmux/_speedups/limits.pxd``), pure ones
(a mixed build) through their methods, so the token-bucket arithmetic is written once per
twin. The ``x-ratelimit-*`` values are formatted with ``snprintf``, and a cached key is let
in, charged and settled without a Python frame of the gate's own; the slots of the request
context, its record and the cache entry are read at their member offsets when the object is
exactly of that class. A count too large for a C integer is formatted by the pure twin's code.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.math cimport ceil, floor, isnan
from libc.stdio cimport snprintf
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from modelmux._speedups.limits cimport DeploymentLimits

import math as _math
import time as _time

from modelmux.observability.record import RequestRecord
from modelmux.pipeline import _gate_py as _pure
from modelmux.pipeline.context import RequestContext
from modelmux.routing.facts import BYTES_PER_TOKEN, DEFAULT_OUTPUT_TOKENS, expected_tokens
from modelmux.schemas.openai_chat import ChatCompletionRequest
from modelmux.tenancy.authn import KeyEntry

include "_slots.pxi"

__all__ = ["NAME", "Gate", "LimitGauge", "Meter", "acquire", "correct", "duration_ms"]

NAME = _pure.NAME
cdef str _NAME = NAME
cdef object _REQUESTS = _pure._REQUESTS
cdef object _TOKENS = _pure._TOKENS
cdef object _monotonic = _time.monotonic
cdef object _chat = ChatCompletionRequest
cdef long long _PER_TOKEN = BYTES_PER_TOKEN
cdef double _OUTPUT = DEFAULT_OUTPUT_TOKENS
cdef double _NAN = float("nan")
cdef double _BIG = 4611686018427387904.0  # 2**62: a count at or above it goes to the pure code
cdef double _EXACT = 4503599627370496.0  # 2**52: an int summed in doubles as in Python ints


cdef inline bytes _int(long long value):
    cdef char buf[32]
    cdef int n = snprintf(buf, sizeof(buf), "%lld", value)
    return PyBytes_FromStringAndSize(buf, n)


cdef bytes _duration_ms(long long ms):
    cdef char buf[48]
    cdef int n
    cdef long long whole
    if ms < 1000:
        n = snprintf(buf, sizeof(buf), "%lldms", ms if ms > 0 else 0)
    else:
        whole = (ms + 999) // 1000
        if whole < 60:
            n = snprintf(buf, sizeof(buf), "%llds", whole)
        else:
            n = snprintf(buf, sizeof(buf), "%lldm%llds", whole // 60, whole % 60)
    return PyBytes_FromStringAndSize(buf, n)


cdef type _CTX = RequestContext
cdef type _RECORD = RequestRecord
cdef type _ENTRY = KeyEntry
cdef Py_ssize_t _HEADERS = _offset(RequestContext, "headers")
cdef Py_ssize_t _REQUEST = _offset(RequestContext, "request")
cdef Py_ssize_t _BODY = _offset(RequestContext, "body")
cdef Py_ssize_t _IDENTITY = _offset(RequestContext, "identity")
cdef Py_ssize_t _RECORD_AT = _offset(RequestContext, "record")
cdef Py_ssize_t _STATE = _offset(RequestContext, "state")
cdef Py_ssize_t _ANSWER_HEADERS = _offset(RequestContext, "response_headers")
cdef Py_ssize_t _ERROR = _offset(RequestContext, "error")
cdef Py_ssize_t _KEY = _offset(RequestRecord, "key")
cdef Py_ssize_t _STATS = _offset(RequestRecord, "stats")
cdef Py_ssize_t _PLAN = _offset(KeyEntry, "plan")
cdef Py_ssize_t _WHO = _offset(KeyEntry, "identity")


def duration_ms(ms):
    """A wait in whole milliseconds as OpenAI's ``x-ratelimit-reset-*`` headers write it."""
    if type(ms) is int and -_BIG < ms < _BIG:
        return _duration_ms(ms)
    return _pure.duration_ms(ms)


cdef inline double _monotonic_now():
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    cdef long long ns = <long long>ts.tv_sec * 1000000000LL + ts.tv_nsec
    if ns % 1000000000LL == 0:  # as CPython's ``time.monotonic`` converts nanoseconds
        return <double>(ns // 1000000000LL)
    return <double>ns / 1e9


cdef class LimitGauge:
    """One kind of limit of a scope as its three ``x-ratelimit-*`` headers, kept encoded
    (``_gate_py.LimitGauge``)."""

    cdef public double at, limit
    cdef public long long whole, ms
    cdef public object limit_pair, remaining, remaining_name, reset, reset_name, sent

    def __init__(self, names, limit):
        self.limit = float(limit)
        self.limit_pair = (names[0], b"%d" % limit)
        self.remaining_name, self.reset_name = names[1], names[2]
        self.at = _NAN
        self.whole = self.ms = -1
        self.remaining = self.reset = (names[1], b"")
        self.sent = ()

    cdef int _update(self, double left) except -1:
        cdef double limit = self.limit
        cdef long long whole, ms
        self.at = left
        if left < 0.0:
            left = 0.0
        elif left > limit:
            left = limit
        if isnan(left):
            raise ValueError("cannot convert float NaN to integer")
        if left >= _BIG:  # beyond a C integer: the pure twin's arithmetic on Python ints
            self.whole = -2
            self.remaining = (self.remaining_name, b"%d" % _math.floor(left))
            self.sent = ()
        else:
            whole = <long long>floor(left)
            if whole != self.whole:
                self.whole = whole
                self.remaining = (self.remaining_name, _int(whole))
                self.sent = ()
        ms = <long long>ceil((limit - left) * 60000.0 / limit)
        if ms != self.ms:
            self.ms = ms
            self.reset = (self.reset_name, _duration_ms(ms))
            self.sent = ()
        return 0

    def update(self, double left):
        """Bring the ``remaining`` and ``reset`` pairs to ``left`` left of the limit."""
        self._update(left)

    cdef inline tuple _write(self, double left):
        if left != self.at:
            self._update(left)
        if not self.sent:
            self.sent = (self.limit_pair, self.remaining, self.reset)
        return self.sent

    def write(self, double left):
        """The three headers for ``left`` left of the limit."""
        return self._write(left)


cdef class Meter:
    """One limited scope of a caller: its spec and a ``LimitGauge`` per kind of limit it has
    (``_gate_py.Meter``)."""

    cdef public object spec, scope, ident, key, rpm, tpm, parallel, rpm_gauge, tpm_gauge, sent
    cdef LimitGauge _rg, _tg
    cdef double _tpm, _seen_r, _seen_t
    cdef bint _seen_has_r, _seen_has_t, _parallel

    def __init__(self, spec, scope="", ident=""):
        self.spec, self.scope, self.ident = spec, scope, ident
        self.key = spec.id
        self.rpm, self.tpm = spec.rpm or 0, spec.tpm or 0
        self.parallel = spec.max_concurrent or 0
        self._rg = LimitGauge(_REQUESTS, self.rpm) if self.rpm else None
        self._tg = LimitGauge(_TOKENS, self.tpm) if self.tpm else None
        self.rpm_gauge, self.tpm_gauge = self._rg, self._tg
        self._tpm = float(self.tpm)
        self._parallel = bool(self.parallel)
        self._seen_has_r = self._seen_has_t = True
        self._seen_r = self._seen_t = _NAN
        self.sent = ()

    @property
    def seen(self):
        """The counts ``sent`` was built for (requests, tokens; None: no such limit)."""
        return (self._seen_r if self._seen_has_r else None,
                self._seen_t if self._seen_has_t else None)

    def requests(self, double left):
        """The three ``x-ratelimit-*-requests`` headers for ``left`` requests left."""
        if self._rg is None:
            raise AssertionError("no requests limit")
        return self._rg._write(left)

    def tokens(self, double left):
        """The three ``x-ratelimit-*-tokens`` headers for ``left`` tokens left."""
        if self._tg is None:
            raise AssertionError("no tokens limit")
        return self._tg._write(left)

    def headers(self, left):
        """``requests`` and ``tokens`` together for ``left`` (requests, tokens; None: no
        such limit), kept for a caller finding the same counts next time."""
        rpm_left, tpm_left = left
        return self._headers(rpm_left is not None, 0.0 if rpm_left is None else rpm_left,
                             tpm_left is not None, 0.0 if tpm_left is None else tpm_left)

    cdef tuple _headers(self, bint has_r, double r, bint has_t, double t):
        cdef LimitGauge rg = self._rg, tg = self._tg
        cdef tuple sent
        if (has_r == self._seen_has_r and has_t == self._seen_has_t
                and (not has_r or r == self._seen_r) and (not has_t or t == self._seen_t)):
            return self.sent
        self._seen_has_r, self._seen_r = has_r, r
        self._seen_has_t, self._seen_t = has_t, t
        if rg is None or not has_r:
            sent = () if tg is None or not has_t else tg._write(t)
        else:
            if r != rg.at:
                rg._update(r)
            if tg is None or not has_t:
                sent = (rg.limit_pair, rg.remaining, rg.reset)
            else:
                if t != tg.at:
                    tg._update(t)
                sent = (rg.limit_pair, rg.remaining, rg.reset,
                        tg.limit_pair, tg.remaining, tg.reset)
        self.sent = sent
        return sent


cdef double _acquire(object buckets, double now, double cost, double* r_left, double* t_left
                     ) except? -1.0:
    """``DeploymentLimits.try_acquire``; what is left of each bucket after a grant in
    ``r_left`` and ``t_left``. Native buckets are charged through ``limits.pxd``
    (``grant``); pure ones (a mixed build) by their own ``try_acquire``, the arithmetic the
    twins share written once in each."""
    cdef DeploymentLimits native
    cdef double got
    if type(buckets) is DeploymentLimits:
        native = <DeploymentLimits>buckets
        got = native.grant(now, cost)
        if native.rpm is not None:
            r_left[0] = native.rpm.tokens
        if native.tpm is not None:
            t_left[0] = native.tpm.tokens
        return got
    got = buckets.try_acquire(now, cost)
    if got == 0.0:
        rpm, tpm = buckets.rpm, buckets.tpm
        if rpm is not None:
            r_left[0] = rpm.tokens
        if tpm is not None:
            t_left[0] = tpm.tokens
    return got


def acquire(buckets, double now, double cost):
    """Reserve one request and ``cost`` tokens at ``now``: 0 if granted, else seconds to wait
    (``DeploymentLimits.try_acquire``)."""
    cdef double r, t
    return _acquire(buckets, now, cost, &r, &t)


cdef int _correct(object buckets, double estimate, double actual) except -1:
    if type(buckets) is DeploymentLimits:
        (<DeploymentLimits>buckets).fix(estimate, actual)
    else:
        buckets.correct(estimate, actual)
    return 0


def correct(buckets, double estimate, double actual):
    """Settle a grant without a concurrency slot (``DeploymentLimits.correct``)."""
    _correct(buckets, estimate, actual)


cdef class Gate:
    """The admit stage's work for the in-process store, and the gate's for a cached key
    (``_gate_py.Gate``)."""

    cdef public object stage, here, fast
    cdef public int share

    def __init__(self, stage, here, fast=None):
        self.stage, self.here, self.fast = stage, here, fast
        self.share = here.share

    def enter(self, ctx):
        """``KeyGate.enter`` with the in-process store: the whole stage for a key ``fast``
        finds; False (nothing done) otherwise."""
        if self.fast is None:
            return False
        entry = self.fast(_get(ctx, _CTX, _HEADERS, "headers"),
                          _get(ctx, _CTX, _REQUEST, "request").model)
        if entry is None:
            return False
        identity = _get(entry, _ENTRY, _WHO, "identity")
        meters = _get(entry, _ENTRY, _PLAN, "plan")
        if meters is None:
            meters = entry.plan = self.stage.meters(identity)
        _set(ctx, _CTX, _IDENTITY, "identity", identity)
        _set(_get(ctx, _CTX, _RECORD_AT, "record"), _RECORD, _KEY, "key", identity.label)
        if meters:
            self._admit(ctx, meters)
        return True

    def admit(self, ctx, meters):
        """Grant the request at every scope of ``meters`` (not empty), the grants held in
        ``ctx.state`` and the ``x-ratelimit-*`` headers added to the answer."""
        self._admit(ctx, meters)

    cdef int _admit(self, object ctx, object meters) except -1:
        cdef Meter meter
        cdef double cost, tpm, now, wait, r = 0.0, t = 0.0
        if len(meters) != 1 or type(meters[0]) is not Meter:
            self.stage.admit_many(self.here, ctx, meters)
            return 0
        meter = meters[0]
        tpm = meter._tpm
        if tpm:
            cost = self._cost(ctx, tpm)
        else:
            cost = 0.0
        here = self.here
        buckets = here.limits.get(meter.key)
        if not buckets:
            buckets = here.of(meter.spec)
        clock = here.clock
        now = _monotonic_now() if clock is _monotonic else clock()
        wait = _acquire(buckets, now, cost, &r, &t)
        if wait:
            self.stage.refuse(ctx, meters, meter, cost, wait)
        _get(ctx, _CTX, _STATE, "state")[_NAME] = ((cost, meter, buckets),)
        sent = meter._headers(buckets.rpm is not None, r, buckets.tpm is not None, t)
        headers = _get(ctx, _CTX, _ANSWER_HEADERS, "response_headers")
        if type(headers) is list:
            (<list>headers).extend(sent)
        else:
            headers += sent
            ctx.response_headers = headers
        return 0

    cdef double _cost(self, object ctx, double tpm) except? -1.0:
        """``expected_tokens``, written out for a chat request, capped as the pure twin caps
        an oversized one."""
        cdef long long prompt
        cdef double cost
        request = _get(ctx, _CTX, _REQUEST, "request")
        body = _get(ctx, _CTX, _BODY, "body")
        if type(request) is _chat:
            output = request.max_completion_tokens or request.max_tokens
            if output is None or (type(output) is int and -_EXACT < output < _EXACT):
                prompt = len(body) // _PER_TOKEN
                cost = <double>(prompt if prompt > 0 else 1) + (
                    _OUTPUT if output is None else <double><long long>output)
                if cost * self.share > tpm:
                    cost = tpm / self.share
                return cost
        tokens = expected_tokens(request, body)
        if tokens * self.share > tpm:
            return tpm / self.share
        return tokens

    def on_answer(self, ctx):
        """Settle the grants with the tokens the answer reported (its estimate when it
        reported none; nothing when no answer came)."""
        granted = (<dict?>_get(ctx, _CTX, _STATE, "state")).pop(_NAME, None)
        if granted is None:
            return
        stats = _get(_get(ctx, _CTX, _RECORD_AT, "record"), _RECORD, _STATS, "stats")
        counted = stats.tokens if stats is not None else None
        if counted is not None:
            spent = counted[0] + counted[1]
        elif _get(ctx, _CTX, _ERROR, "error") is not None:
            spent = 0.0
        else:
            spent = None
        cdef bint parallel, tpm
        for reserved, meter, buckets in granted:
            if type(meter) is Meter:
                parallel, tpm = (<Meter>meter)._parallel, (<Meter>meter)._tpm != 0.0
            else:
                parallel, tpm = bool(meter.parallel), bool(meter.tpm)
            if parallel:  # a slot to free in any case
                buckets.settle(self.here.clock(), reserved,
                               reserved if spent is None or not tpm else spent)
            elif tpm and spent is not None and spent != reserved:
                _correct(buckets, reserved, spent)
