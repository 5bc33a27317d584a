"""OpenAI's ``x-ratelimit-*`` headers for a caller's limited scopes, kept encoded.

Every answer to a limited caller carries them (``pipeline.admit``): the limit, what is left and
when the bucket is full again, for requests and for tokens. A ``LimitGauge`` formats a count only
when it changed; a ``Meter`` is one scope with a gauge per kind of limit it has. Both come
from ``_gate_py`` or its native twin (``modelmux._speedups.gate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelmux import _accel
from modelmux.errors import Headers
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.store import LimitStore

if TYPE_CHECKING:
    from modelmux.pipeline._gate_py import LimitGauge, Meter, duration_ms
else:  # the native twin when built (``_accel``), else the pure one
    _twin = _accel.load("gate", "modelmux.pipeline._gate_py")
    LimitGauge, Meter, duration_ms = _twin.LimitGauge, _twin.Meter, _twin.duration_ms

__all__ = ["Available", "LimitGauge", "Meter", "describe", "duration", "duration_ms",
           "ratelimit_headers"]


def duration(seconds: float) -> bytes:
    """A wait as OpenAI's ``x-ratelimit-reset-*`` headers write it: ``20ms`` below a second,
    else whole seconds rounded up, ``45s`` or ``6m0s``."""
    return duration_ms(math.ceil(seconds * 1000))


Available = Callable[[DeploymentSpec], tuple[float | None, float | None]]


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
