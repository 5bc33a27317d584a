"""Pure twin of ``modelmux._speedups.gate``: a limited caller's per-request work with the
in-process store, as readable Python; the native twin does the same in C.

``LimitGauge`` and ``Meter`` keep a scope's ``x-ratelimit-*`` headers encoded and format only what
changed; ``acquire`` and ``correct`` are the token-bucket arithmetic of one grant
(``DeploymentLimits.try_acquire`` and ``.correct``); ``Gate`` is the stage's hot part: a
cached key let in and charged (``enter``), a grant decided (``admit``) and settled
(``on_answer``). ``pipeline.ratelimits`` and ``pipeline.admit`` pick a twin through ``_accel``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from math import ceil, floor
from typing import TYPE_CHECKING, Any

from modelmux.routing.facts import expected_tokens
from modelmux.routing.limits import DeploymentLimits
from modelmux.routing.models import DeploymentSpec

if TYPE_CHECKING:
    from modelmux.pipeline.context import RequestContext
    from modelmux.routing.memory import MemoryLimits

NAME = "admit"
"""The admit stage's key in ``ctx.state``: the grants held until the answer."""

Sent = tuple[tuple[bytes, bytes], ...]


def duration_ms(ms: int) -> bytes:
    """A wait in whole milliseconds as OpenAI's ``x-ratelimit-reset-*`` headers write it:
    ``20ms`` below a second, else whole seconds rounded up, ``45s`` or ``6m0s``."""
    if ms < 1000:
        return b"%dms" % max(0, ms)
    whole = (ms + 999) // 1000
    return b"%ds" % whole if whole < 60 else b"%dm%ds" % divmod(whole, 60)


class LimitGauge:
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
        is emptied when one changed: ``write`` builds it anew).

        Raises:
            ValueError: ``left`` is NaN.
        """
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


_REQUESTS = (b"x-ratelimit-limit-requests", b"x-ratelimit-remaining-requests",
             b"x-ratelimit-reset-requests")
_TOKENS = (b"x-ratelimit-limit-tokens", b"x-ratelimit-remaining-tokens",
           b"x-ratelimit-reset-tokens")


class Meter:
    """One limited scope of a caller: its spec and a ``LimitGauge`` per kind of limit it has."""

    __slots__ = ("ident", "key", "parallel", "rpm", "rpm_gauge", "scope", "seen", "sent", "spec",
                 "tpm", "tpm_gauge")

    def __init__(self, spec: DeploymentSpec, scope: str = "", ident: str = "") -> None:
        self.spec, self.scope, self.ident = spec, scope, ident
        self.key = spec.id
        """The limit store's key of this scope, as a ``Lease`` names it."""
        self.rpm, self.tpm = spec.rpm or 0, spec.tpm or 0
        self.parallel = spec.max_concurrent or 0
        self.rpm_gauge = LimitGauge(_REQUESTS, self.rpm) if self.rpm else None
        self.tpm_gauge = LimitGauge(_TOKENS, self.tpm) if self.tpm else None
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
        and kept for a caller finding the same counts next time."""
        if left == self.seen:
            return self.sent
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


def acquire(buckets: DeploymentLimits, now: float, cost: float) -> float:
    """Reserve one request and ``cost`` tokens at ``now``: 0 if granted, else seconds to wait
    (``DeploymentLimits.try_acquire``, which this twin runs)."""
    return buckets.try_acquire(now, cost)


def correct(buckets: DeploymentLimits, estimate: float, actual: float) -> None:
    """Settle a grant without a concurrency slot (``DeploymentLimits.correct``)."""
    buckets.correct(estimate, actual)


class Gate:
    """The admit stage's work for the in-process store, and the gate's for a cached key.

    ``stage`` is the ``AdmitStage`` it serves: its ``meters`` (a caller's limited scopes),
    ``admit_many`` (several limited scopes) and ``refuse`` (the 429) are asked back. ``fast``
    is ``Authenticator.fast`` for a ``KeyGate``, else None.
    """

    __slots__ = ("fast", "here", "share", "stage")

    def __init__(self, stage: Any, here: MemoryLimits,
                 fast: Callable[..., Any] | None = None) -> None:
        self.stage, self.here, self.fast = stage, here, fast
        self.share: int = here.share

    def enter(self, ctx: RequestContext) -> bool:
        """``KeyGate.enter`` with the in-process store: the whole stage for a key ``fast``
        finds; False (nothing done) otherwise.

        Raises:
            RateLimited: as ``AdmitStage.on_request``.
        """
        if self.fast is None:
            return False
        entry = self.fast(ctx.headers, ctx.request.model)
        if entry is None:
            return False
        meters = entry.plan
        if meters is None:
            meters = entry.plan = self.stage.meters(entry.identity)
        identity = entry.identity
        ctx.identity = identity
        ctx.record.key = identity.label
        if meters:
            self.admit(ctx, meters)
        return True

    def admit(self, ctx: RequestContext, meters: list[Meter]) -> None:
        """Grant the request at every scope of ``meters`` (not empty), holding the grants in
        ``ctx.state`` as ``(tokens, meter, buckets)`` each, with the ``x-ratelimit-*`` headers
        of the scope with the least left added to the answer.

        Raises:
            RateLimited: some scope is over its limits.
        """
        if len(meters) > 1:
            self.stage.admit_many(self.here, ctx, meters)
            return
        meter = meters[0]  # one limited scope, the usual case
        tpm = meter.tpm
        if tpm:
            cost: float = expected_tokens(ctx.request, ctx.body)
            if cost * self.share > tpm:
                # oversized: admitted by a full bucket, which its real count puts in debt
                cost = tpm / self.share
        else:
            cost = 0.0
        here = self.here
        buckets = here.limits.get(meter.key) or here.of(meter.spec)
        wait = buckets.try_acquire(here.clock(), cost)  # ``acquire``, a call less
        if wait:
            self.stage.refuse(ctx, meters, meter, cost, wait)
        ctx.state[NAME] = ((cost, meter, buckets),)
        rpm, tpm_bucket = buckets.rpm, buckets.tpm
        left = (rpm.tokens if rpm is not None else None,
                tpm_bucket.tokens if tpm_bucket is not None else None)
        ctx.response_headers += meter.sent if left == meter.seen else meter.headers(left)

    def on_answer(self, ctx: RequestContext) -> None:
        """Settle the grants with the tokens the answer reported (its estimate when it
        reported none; nothing when no answer came)."""
        granted = ctx.state.pop(NAME, None)
        if granted is None:
            return
        stats = ctx.record.stats
        counted = stats.tokens if stats is not None else None
        spent = (counted[0] + counted[1] if counted is not None
                 else 0.0 if ctx.error is not None else None)
        for reserved, meter, buckets in granted:
            # a scope without tpm reserved no tokens and has none to correct; the buckets are
            # the ones charged (a reload since may have carried them to a new store)
            if meter.parallel:  # a slot to free in any case
                buckets.settle(self.here.clock(), reserved,
                               reserved if spent is None or not meter.tpm else spent)
            elif spent is not None and spent != reserved and meter.tpm:
                buckets.correct(reserved, spent)  # ``correct``
