"""A circuit breaker per deployment: closed, open, half-open, driven by an explicit clock.

Owns the failure bookkeeping (consecutive failures, a bucketed sliding window of outcomes)
and the transitions; it does not time requests, sleep or log. ``now`` is any monotonic
seconds value the caller supplies; every method takes it, so tests need no real clock.
"""

from __future__ import annotations

import enum
import math
from collections import deque

from modelmux.config.settings import BreakerPolicy

BUCKETS = 10


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """One deployment's breaker.

    Closed → open after ``consecutive_failures`` in a row or an error rate over the window;
    open → half-open once the cooldown passes; half-open lets ``half_open_probes`` requests
    through, closes on the first success and re-opens on a failure with a longer cooldown.
    """

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._state = BreakerState.CLOSED
        self._open_until = 0.0
        self._cooldown = self.policy.cooldown
        self._consecutive = 0
        self._probes = 0
        self._opened = 0
        self._pinned = False
        self._buckets: deque[list[float]] = deque()

    def _advance(self, now: float) -> None:
        if self._state is BreakerState.OPEN and now >= self._open_until and not self._pinned:
            self._state = BreakerState.HALF_OPEN
            self._probes = 0

    def _record(self, now: float, failed: bool) -> None:
        width = self.policy.window / BUCKETS
        start = math.floor(now / width) * width
        while self._buckets and self._buckets[0][0] <= now - self.policy.window:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1][0] < start:
            self._buckets.append([start, 0, 0])
        self._buckets[-1][1] += 1
        self._buckets[-1][2] += failed

    def _window(self, now: float) -> tuple[int, int]:
        live = [b for b in self._buckets if b[0] > now - self.policy.window]
        return int(sum(b[1] for b in live)), int(sum(b[2] for b in live))

    def _open(self, now: float, duration: float) -> None:
        self._state = BreakerState.OPEN
        self._open_until = now + duration
        self._probes = 0
        self._consecutive = 0
        self._buckets.clear()
        self._opened += 1

    @property
    def times_opened(self) -> int:
        """How many times this breaker opened on its own verdicts (not ``hold_open``)."""
        return self._opened

    def open_for(self, now: float) -> float:
        """Seconds until an open circuit turns half-open; 0 when it is not open."""
        if self.state(now) is not BreakerState.OPEN or self._pinned:
            return 0.0
        return max(0.0, self._open_until - now)

    def hold_open(self, now: float, duration: float) -> bool:
        """Another replica opened this deployment's circuit: be open for at least ``duration``.

        Not a verdict of this breaker's own (``times_opened`` and the cooldown are unchanged).
        Returns whether anything changed.
        """
        self._advance(now)
        until = now + duration
        if duration <= 0 or (self._state is BreakerState.OPEN and self._open_until >= until):
            return False
        if self._state is not BreakerState.OPEN:
            self._state = BreakerState.OPEN
            self._probes = 0
            self._consecutive = 0
            self._buckets.clear()
        self._open_until = until
        return True

    @property
    def pinned(self) -> bool:
        """An operator opened this circuit: it stays open until ``reset``."""
        return self._pinned

    def pin_open(self, now: float) -> None:
        """Open the circuit until an operator closes it (no cooldown, no probes)."""
        self._open(now, 0.0)
        self._opened -= 1  # not a verdict of this breaker's own
        self._pinned = True

    def reset(self, now: float) -> None:
        """Close the circuit now and forget its failures and cooldown (an operator's call)."""
        self._state = BreakerState.CLOSED
        self._pinned = False
        self._open_until = now
        self._cooldown = self.policy.cooldown
        self._probes = 0
        self._consecutive = 0
        self._buckets.clear()

    def state(self, now: float) -> BreakerState:
        """The state at ``now`` (an expired open circuit reads as half-open)."""
        self._advance(now)
        return self._state

    def allow(self, now: float) -> bool:
        """Whether a request may go to this deployment now; a granted probe takes a slot.

        Every granted request must later report ``on_success``, ``on_failure`` or ``release``.
        """
        if self._state is BreakerState.CLOSED:  # _advance moves only an open circuit
            return True
        self._advance(now)
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and self._probes < self.policy.half_open_probes:
            self._probes += 1
            return True
        return False

    def release(self, now: float) -> None:
        """A granted request ended with no verdict (client went away): free its probe slot."""
        self._advance(now)
        if self._state is BreakerState.HALF_OPEN and self._probes:
            self._probes -= 1

    def on_success(self, now: float) -> None:
        """A request succeeded; in half-open this closes the circuit and resets the cooldown."""
        if self._state is BreakerState.OPEN:  # _advance moves only an open circuit
            self._advance(now)
        if self._state is BreakerState.HALF_OPEN:
            self._state = BreakerState.CLOSED
            self._cooldown = self.policy.cooldown
            self._probes = 0
            self._consecutive = 0
            self._buckets.clear()
        elif self._state is BreakerState.CLOSED:
            self._consecutive = 0
            self._record(now, failed=False)

    def on_failure(self, now: float, retry_after: float | None = None) -> None:
        """A request failed; ``retry_after`` (from a 429) opens the circuit for exactly that long.

        A failed probe re-opens with the cooldown multiplied (capped at ``max_cooldown``).
        Late failures of requests sent before the circuit opened change nothing.
        """
        self._advance(now)
        if retry_after is not None:
            self._open(now, retry_after if retry_after > 0 else 0.0)
            return
        if self._state is BreakerState.HALF_OPEN:
            self._cooldown = min(self._cooldown * self.policy.cooldown_multiplier,
                                 self.policy.max_cooldown)
            self._open(now, self._cooldown)
        elif self._state is BreakerState.CLOSED:
            self._consecutive += 1
            self._record(now, failed=True)
            total, failures = self._window(now)
            over_rate = (total >= self.policy.min_requests
                         and failures >= self.policy.error_rate * total)
            if self._consecutive >= self.policy.consecutive_failures or over_rate:
                self._open(now, self._cooldown)

    def snapshot(self, now: float) -> dict[str, object]:
        """A JSON-ready view for an admin endpoint."""
        state = self.state(now)
        total, failures = self._window(now)
        return {
            "state": state.value,
            "consecutive_failures": self._consecutive,
            "window_requests": total,
            "window_failures": failures,
            "error_rate": failures / total if total else 0.0,
            "open_for": self.open_for(now),
            "cooldown": self._cooldown,
            "probes_in_flight": self._probes,
            "times_opened": self._opened,
            "pinned": self._pinned,
        }
