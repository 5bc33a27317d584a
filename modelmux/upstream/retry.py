"""Retry policy for upstream calls: which statuses to retry and how long to wait.

Pure functions with the clock and the random source injected; the caller owns the loop that
sleeps and retries (and only retries before the first byte has reached its client). ``Backoff``
is the one waiting rule the call stage applies, to a retry and to a fallback alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime

from modelmux.errors import ModelMuxError, RateLimited, ServiceUnavailable, UpstreamError
from modelmux.upstream.errors import UpstreamClosed

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504, 529})

# RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds. Decimals are accepted leniently.
_DELAY = re.compile(rb"[0-9]{1,12}(?:\.[0-9]{1,6})?")
_MAX_DOUBLINGS = 64


def is_retryable_status(status: int) -> bool:
    """True for statuses worth another attempt: rate limits, overload and gateway errors."""
    return status in RETRYABLE_STATUSES


# codes ``providers.errors`` gives the upstream 5xx answers another attempt may cure
_RETRYABLE_CODES = frozenset({"upstream_server_error", "upstream_api_error", "overloaded"})


def is_retryable_error(error: ModelMuxError) -> bool:
    """True for errors another attempt may cure: rate limits, overload, server errors, resets."""
    if isinstance(error, (RateLimited, ServiceUnavailable, UpstreamClosed)):
        return True
    return type(error) is UpstreamError and error.code in _RETRYABLE_CODES


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None,
    rand: Callable[[], float],
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Exponential backoff with full jitter, ``rand() * min(cap, base * 2**attempt)``, raised to
    ``retry_after`` when the upstream named a wait, and never above ``cap``: a caller that will
    not wait as long as the upstream asked should compare ``retry_after`` with ``cap`` itself.

    Raises:
        ValueError: a negative attempt, base or cap.
    """
    if attempt < 0 or base < 0 or cap < 0:
        raise ValueError("attempt, base and cap must be non-negative")
    ceiling = min(cap, base * 2.0 ** min(attempt, _MAX_DOUBLINGS))
    delay = min(max(rand(), 0.0), 1.0) * ceiling
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return min(delay, cap)


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before another try: ``base`` and ``cap`` in seconds; exponential with
    full jitter (``backoff_delay``), or ``constant``: ``base`` × [0.5, 1]."""

    base: float
    cap: float
    constant: bool = False

    def delay(self, tried: int, rand: Callable[[], float],
              retry_after: float | None = None) -> float:
        """Seconds to wait before the next try, ``tried`` being how many came before it minus
        one; raised to ``retry_after`` when that is within ``cap`` (a longer one is not waited
        for: whether to try at all is the caller's call)."""
        if self.constant:
            delay = min(self.base * (0.5 + 0.5 * rand()), self.cap)
        else:
            delay = backoff_delay(tried, base=self.base, cap=self.cap, retry_after=None,
                                  rand=rand)
        if retry_after is not None and retry_after <= self.cap:
            delay = max(delay, retry_after)
        return delay


def parse_retry_after(value: bytes, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds named by a Retry-After value (delay-seconds or HTTP-date), None if unreadable.

    A date in the past gives 0.0; ``now`` is the wall clock in Unix seconds.
    """
    text = value.strip()
    if _DELAY.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError, TypeError, IndexError):
        return None
    if when.tzinfo is None:  # asctime dates carry no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now())
