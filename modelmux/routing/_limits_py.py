"""Pure twin of ``modelmux._speedups.limits``: token buckets and a concurrency gate for one
deployment or key, as readable Python (``routing.limits`` picks a twin through ``_accel``).

Owns the arithmetic only: requests per minute, tokens per minute (reserve an estimate,
settle with the real count) and max concurrent. ``now`` is caller-supplied monotonic
seconds; a clock going backwards refills nothing. No I/O, no sleeping, no shared state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` per second; may run into debt.

    ``tokens`` is the count as of the last refill (any call that takes ``now``)."""

    __slots__ = ("_last", "capacity", "rate", "tokens")

    def __init__(self, capacity: float, rate: float, now: float = 0.0) -> None:
        if capacity <= 0 or rate <= 0:
            raise ValueError("capacity and rate must be positive")
        self.capacity = float(capacity)
        self.rate = float(rate)
        self.tokens = float(capacity)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
            self._last = now

    def available(self, now: float) -> float:
        """Tokens available at ``now`` (negative while in debt)."""
        self._refill(now)
        return self.tokens

    def wait_time(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` tokens are there: 0 if now, ``inf`` if never (over capacity)."""
        tokens = self.tokens
        if now > self._last:  # ``_refill``, inline: this runs for every request
            tokens += (now - self._last) * self.rate
            if tokens > self.capacity:  # noqa: PLR1730 (``min`` is a call more)
                tokens = self.capacity
            self.tokens, self._last = tokens, now
        if cost > self.capacity:
            return math.inf
        if cost <= tokens:
            return 0.0
        return (cost - tokens) / self.rate

    def take(self, cost: float) -> None:
        """Take ``cost`` unconditionally (call after ``wait_time`` said 0)."""
        self.tokens -= cost

    def try_acquire(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if they are there: 0 when granted, else seconds to wait."""
        wait = self.wait_time(now, cost)
        if wait == 0.0:
            self.take(cost)
        return wait

    def give_back(self, now: float, amount: float) -> None:
        """Return tokens (a reservation that overestimated); never above capacity."""
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens + amount)


def per_minute(limit: float, now: float = 0.0) -> TokenBucket:
    """A bucket allowing ``limit`` per minute with a burst of ``limit``."""
    return TokenBucket(limit, limit / 60.0, now)


class Concurrency:
    """At most ``limit`` requests at once; a refusal has no known wait, so it reads ``inf``."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.in_flight = 0

    def wait_time(self, now: float, cost: float = 1.0) -> float:
        """0 if ``cost`` more slots fit now, else ``inf`` (wait for a release)."""
        return 0.0 if self.in_flight + cost <= self.limit else math.inf

    def try_acquire(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` slots: 0 when granted, ``inf`` when full."""
        wait = self.wait_time(now, cost)
        if wait == 0.0:
            self.in_flight += int(cost)
        return wait

    def release(self, cost: int = 1) -> None:
        """Hand back slots taken by ``try_acquire``."""
        self.in_flight = max(0, self.in_flight - cost)


@dataclass(slots=True)
class DeploymentLimits:
    """RPM, TPM and concurrency together: a request gets all three or takes none."""

    rpm: TokenBucket | None = None
    tpm: TokenBucket | None = None
    concurrency: Concurrency | None = None

    def try_acquire(self, now: float, cost: float) -> float:
        """Reserve one request and ``cost`` estimated tokens: 0 if granted, else seconds to wait.

        The wait is the longest of the limits that refused; nothing is taken on refusal.
        """
        rpm, tpm, concurrency = self.rpm, self.tpm, self.concurrency
        wait = rpm_left = tpm_left = 0.0
        # ``rpm.wait_time(now, 1.0)`` and ``tpm.wait_time(now, cost)``, inline (this runs for
        # every request); a refill is stored with what is taken, in one write
        if rpm is not None:
            rpm_left = rpm.tokens
            if now > rpm._last:
                rpm_left += (now - rpm._last) * rpm.rate
                if rpm_left > rpm.capacity:  # noqa: PLR1730
                    rpm_left = rpm.capacity
                rpm._last = now  # the refill is stored below, granted or not
            if rpm_left < 1.0:
                wait = math.inf if rpm.capacity < 1.0 else (1.0 - rpm_left) / rpm.rate
        if tpm is not None:
            tpm_left = tpm.tokens
            if now > tpm._last:
                tpm_left += (now - tpm._last) * tpm.rate
                if tpm_left > tpm.capacity:  # noqa: PLR1730
                    tpm_left = tpm.capacity
                tpm._last = now
            if cost > tpm_left:
                if cost > tpm.capacity:
                    wait = math.inf
                elif (cost - tpm_left) / tpm.rate > wait:
                    wait = (cost - tpm_left) / tpm.rate
        if concurrency is not None and concurrency.in_flight >= concurrency.limit:
            wait = math.inf
        if wait > 0.0:
            if rpm is not None:
                rpm.tokens = rpm_left
            if tpm is not None:
                tpm.tokens = tpm_left
            return wait
        if rpm is not None:
            rpm.tokens = rpm_left - 1.0
        if tpm is not None:
            tpm.tokens = tpm_left - cost
        if concurrency is not None:
            concurrency.in_flight += 1
        return 0.0

    def settle(self, now: float, estimate: float, actual: float) -> None:
        """The request finished using ``actual`` tokens: correct the reservation, free its slot.

        Underestimates put the TPM bucket into debt, so later requests wait longer.
        """
        tpm = self.tpm
        if tpm is not None and actual != estimate:
            if actual < estimate:  # ``tpm.give_back(now, estimate - actual)``, inline
                tokens = tpm.tokens
                if now > tpm._last:
                    tokens += (now - tpm._last) * tpm.rate
                    tpm._last = now
                tokens += estimate - actual
                tpm.tokens = tokens if tokens < tpm.capacity else tpm.capacity  # noqa: FURB136
            else:
                tpm.tokens -= actual - estimate
        if self.concurrency is not None:
            self.concurrency.release()

    def correct(self, estimate: float, actual: float) -> None:
        """``settle`` of a request that holds no concurrency slot, without a clock: tokens
        given back before or after a refill come to the same count (the bucket is capped at
        its capacity either way), so none is done."""
        tpm = self.tpm
        if tpm is not None:
            tokens = tpm.tokens + (estimate - actual)
            tpm.tokens = tokens if tokens < tpm.capacity else tpm.capacity  # noqa: FURB136

    def cancel(self, now: float, estimate: float) -> None:
        """The request never ran: return its tokens and slot (the request itself still counts)."""
        self.settle(now, estimate, 0.0)
