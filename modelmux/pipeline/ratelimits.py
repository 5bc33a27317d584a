"""OpenAI's ``x-ratelimit-*`` headers for a caller's limited scopes, kept encoded.

Every answer to a limited caller carries them (``pipeline.admit``): the limit, what is left and
when the bucket is full again, for requests and for tokens. A ``Gauge`` formats a count only
when it changed; a ``Meter`` is one scope with a gauge per kind of limit it has.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from math import ceil, floor

from modelmux.errors import Headers
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.store import LimitStore


def duration(seconds: float) -> bytes:
    """A wait as OpenAI's ``x-ratelimit-reset-*`` headers write it: ``20ms`` below a second,
    else whole seconds rounded up, ``45s`` or ``6m0s``."""
    return duration_ms(math.ceil(seconds * 1000))


def duration_ms(ms: int) -> bytes:
    """``duration`` of a wait already in whole milliseconds."""
    if ms < 1000:
        return b"%dms" % max(0, ms)
    whole = (ms + 999) // 1000
    return b"%ds" % whole if whole < 60 else b"%dm%ds" % divmod(whole, 60)


Available = Callable[[DeploymentSpec], tuple[float | None, float | None]]

_REQUESTS = (b"x-ratelimit-limit-requests", b"x-ratelimit-remaining-requests",
             b"x-ratelimit-reset-requests")
_TOKENS = (b"x-ratelimit-limit-tokens", b"x-ratelimit-remaining-tokens",
           b"x-ratelimit-reset-tokens")
Sent = tuple[tuple[bytes, bytes], ...]


class Gauge:
    """One kind of limit of a scope (requests or tokens) as its three ``x-ratelimit-*``
    headers, kept encoded: a caller under its limits usually finds its bucket as full as last
    time, so the same bytes are sent again, and only the pair that changed is formatted."""

    __slots__ = ("at", "limit", "limit_pair", "ms", "remaining", "remaining_name", "reset",
                 "reset_name", "sent", "whole")

    def __init__(self, names: tuple[bytes, bytes, bytes], limit: int) -> None:
        self.limit = float(limit)  # float with float: no conversion on every update
        self.limit_pair = (names[0], b"%d" % limit)
        self.remaining_name, self.reset_name = names[1], names[2]
        self.at = math.nan  # the ``left`` last written: nan equals nothing
        self.whole = self.ms = -1
        self.remaining = self.reset = (names[1], b"")
        self.sent: Sent = ()

    def update(self, left: float) -> None:
        """Bring the ``remaining`` and ``reset`` pairs to ``left`` left of the limit (``sent``
        is emptied when one changed: ``write`` builds it anew)."""
        self.at = left
        limit = self.limit
        if left < 0.0:
            left = 0.0
        elif left > limit:
            left = limit
        whole = floor(left)  # ``int``, for less: ``left`` is not negative
        if whole != self.whole:
            self.whole = whole
            self.remaining = (self.remaining_name, b"%d" % whole)
            self.sent = ()
        ms = ceil((limit - left) * 60_000.0 / limit)
        if ms != self.ms:
            self.ms = ms
            self.reset = (self.reset_name, b"%dms" % ms if ms < 1000 else duration_ms(ms))
            self.sent = ()

    def write(self, left: float) -> Sent:
        """The three headers for ``left`` left of the limit."""
        if left != self.at:
            self.update(left)
        sent = self.sent
        if not sent:
            sent = self.sent = (self.limit_pair, self.remaining, self.reset)
        return sent


class Meter:
    """One limited scope of a caller: its spec and a ``Gauge`` per kind of limit it has."""

    __slots__ = ("ident", "key", "parallel", "rpm", "rpm_gauge", "scope", "seen", "sent", "spec",
                 "tpm", "tpm_gauge")

    def __init__(self, spec: DeploymentSpec, scope: str = "", ident: str = "") -> None:
        self.spec, self.scope, self.ident = spec, scope, ident
        self.key = spec.id
        """The limit store's key of this scope, as a ``Lease`` names it."""
        self.rpm, self.tpm = spec.rpm or 0, spec.tpm or 0
        self.parallel = spec.max_concurrent or 0
        self.rpm_gauge = Gauge(_REQUESTS, self.rpm) if self.rpm else None
        self.tpm_gauge = Gauge(_TOKENS, self.tpm) if self.tpm else None
        self.seen: tuple[float | None, float | None] = (math.nan, math.nan)
        self.sent: Sent = ()

    def requests(self, left: float) -> Sent:
        """The three ``x-ratelimit-*-requests`` headers for ``left`` requests left."""
        assert self.rpm_gauge is not None
        return self.rpm_gauge.write(left)

    def tokens(self, left: float) -> Sent:
        """The three ``x-ratelimit-*-tokens`` headers for ``left`` tokens left."""
        assert self.tpm_gauge is not None
        return self.tpm_gauge.write(left)

    def headers(self, left: tuple[float | None, float | None]) -> Sent:
        """``requests`` and ``tokens`` together for ``left`` (requests, tokens; None: no such
        limit), when this is the only limited scope, built as one tuple from the gauges' pairs
        and kept as ``sent`` for ``seen``: a caller finding ``left == seen`` sends ``sent``."""
        self.seen = left
        rpm_left, tpm_left = left
        rpm, tpm = self.rpm_gauge, self.tpm_gauge
        if rpm is None or rpm_left is None:
            sent = () if tpm is None or tpm_left is None else tpm.write(tpm_left)
        else:
            if rpm_left != rpm.at:
                rpm.update(rpm_left)
            if tpm is None or tpm_left is None:
                sent = (rpm.limit_pair, rpm.remaining, rpm.reset)
            else:
                if tpm_left != tpm.at:
                    tpm.update(tpm_left)
                sent = (rpm.limit_pair, rpm.remaining, rpm.reset,
                        tpm.limit_pair, tpm.remaining, tpm.reset)
        self.sent = sent
        return sent


def describe(available: Available, meters: list[Meter], headers: Headers) -> None:
    """Append OpenAI's ``x-ratelimit-*`` headers for the scope with the fewest requests (and,
    apart, the fewest tokens) left; none for a kind of limit no scope has. ``available`` is
    the store's (``LimitStore.available``, or ``MemoryLimits.left`` right after acquiring)."""
    requests = tokens = None
    rpm_least = tpm_least = math.inf
    for meter in meters:
        if meter.rpm or meter.tpm:
            rpm_left, tpm_left = available(meter.spec)
            if meter.rpm and rpm_left is not None and rpm_left < rpm_least:
                requests, rpm_least = meter, rpm_left
            if meter.tpm and tpm_left is not None and tpm_left < tpm_least:
                tokens, tpm_least = meter, tpm_left
    if requests is not None:
        headers += requests.requests(rpm_least)
    if tokens is not None:
        headers += tokens.tokens(tpm_least)


def ratelimit_headers(store: LimitStore, specs: list[DeploymentSpec]) -> Headers:
    """``describe`` for bare specs: the headers as a new list."""
    headers: Headers = []
    describe(store.available, [Meter(spec) for spec in specs], headers)
    return headers
