# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``modelmux.routing._limits_py``: the same token buckets and concurrency gate
on C doubles, each expression in the pure twin's order so every count is the same float.

``DeploymentLimits.grant`` and ``.fix`` are ``try_acquire`` and ``correct`` for C callers (the
admit stage's native gate, ``modelmux._speedups.gate``), which read the fields directly.
"""

__all__ = ["Concurrency", "DeploymentLimits", "TokenBucket", "per_minute"]

cdef double _INF = float("inf")


cdef class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` per second; may run into debt."""

    def __init__(self, capacity, rate, double now=0.0):
        if capacity <= 0 or rate <= 0:
            raise ValueError("capacity and rate must be positive")
        self.capacity = float(capacity)
        self.rate = float(rate)
        self.tokens = self.capacity
        self._last = now

    cdef void _fill(self, double now) noexcept:
        if now > self._last:
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
            self._last = now

    def _refill(self, double now):
        self._fill(now)

    def available(self, double now):
        """Tokens available at ``now`` (negative while in debt)."""
        self._fill(now)
        return self.tokens

    def wait_time(self, double now, double cost):
        """Seconds until ``cost`` tokens are there: 0 if now, ``inf`` if never."""
        cdef double tokens = self.tokens
        if now > self._last:
            tokens += (now - self._last) * self.rate
            if tokens > self.capacity:
                tokens = self.capacity
            self.tokens, self._last = tokens, now
        if cost > self.capacity:
            return _INF
        if cost <= tokens:
            return 0.0
        return (cost - tokens) / self.rate

    def take(self, double cost):
        """Take ``cost`` unconditionally (call after ``wait_time`` said 0)."""
        self.tokens -= cost

    def try_acquire(self, double now, double cost=1.0):
        """Take ``cost`` tokens if they are there: 0 when granted, else seconds to wait."""
        wait = self.wait_time(now, cost)
        if wait == 0.0:
            self.tokens -= cost
        return wait

    def give_back(self, double now, double amount):
        """Return tokens (a reservation that overestimated); never above capacity."""
        self._fill(now)
        self.tokens = min(self.capacity, self.tokens + amount)


def per_minute(limit, double now=0.0):
    """A bucket allowing ``limit`` per minute with a burst of ``limit``."""
    return TokenBucket(limit, limit / 60.0, now)


cdef class Concurrency:
    """At most ``limit`` requests at once; a refusal reads ``inf``."""

    def __init__(self, long long limit):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.in_flight = 0

    def wait_time(self, double now, double cost=1.0):
        """0 if ``cost`` more slots fit now, else ``inf`` (wait for a release)."""
        return 0.0 if self.in_flight + cost <= self.limit else _INF

    def try_acquire(self, double now, double cost=1.0):
        """Take ``cost`` slots: 0 when granted, ``inf`` when full."""
        wait = self.wait_time(now, cost)
        if wait == 0.0:
            self.in_flight += int(cost)
        return wait

    def release(self, long long cost=1):
        """Hand back slots taken by ``try_acquire``."""
        self.in_flight = max(0, self.in_flight - cost)


cdef class DeploymentLimits:
    """RPM, TPM and concurrency together: a request gets all three or takes none."""

    def __init__(self, TokenBucket rpm=None, TokenBucket tpm=None,
                 Concurrency concurrency=None):
        self.rpm, self.tpm, self.concurrency = rpm, tpm, concurrency

    def __repr__(self):
        return (f"DeploymentLimits(rpm={self.rpm!r}, tpm={self.tpm!r}, "
                f"concurrency={self.concurrency!r})")

    cdef double grant(self, double now, double cost) except? -1.0:
        cdef TokenBucket rpm = self.rpm, tpm = self.tpm
        cdef Concurrency concurrency = self.concurrency
        cdef double wait = 0.0, rpm_left = 0.0, tpm_left = 0.0
        if rpm is not None:
            rpm_left = rpm.tokens
            if now > rpm._last:
                rpm_left += (now - rpm._last) * rpm.rate
                if rpm_left > rpm.capacity:
                    rpm_left = rpm.capacity
                rpm._last = now
            if rpm_left < 1.0:
                wait = _INF if rpm.capacity < 1.0 else (1.0 - rpm_left) / rpm.rate
        if tpm is not None:
            tpm_left = tpm.tokens
            if now > tpm._last:
                tpm_left += (now - tpm._last) * tpm.rate
                if tpm_left > tpm.capacity:
                    tpm_left = tpm.capacity
                tpm._last = now
            if cost > tpm_left:
                if cost > tpm.capacity:
                    wait = _INF
                elif (cost - tpm_left) / tpm.rate > wait:
                    wait = (cost - tpm_left) / tpm.rate
        if concurrency is not None and concurrency.in_flight >= concurrency.limit:
            wait = _INF
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

    def try_acquire(self, double now, double cost):
        """Reserve one request and ``cost`` estimated tokens: 0 if granted, else seconds to
        wait (the longest of the limits that refused); nothing is taken on refusal."""
        return self.grant(now, cost)

    def settle(self, double now, double estimate, double actual):
        """The request finished using ``actual`` tokens: correct the reservation, free its
        slot. Underestimates put the TPM bucket into debt."""
        cdef TokenBucket tpm = self.tpm
        cdef double tokens
        if tpm is not None and actual != estimate:
            if actual < estimate:
                tokens = tpm.tokens
                if now > tpm._last:
                    tokens += (now - tpm._last) * tpm.rate
                    tpm._last = now
                tokens += estimate - actual
                tpm.tokens = tokens if tokens < tpm.capacity else tpm.capacity
            else:
                tpm.tokens -= actual - estimate
        if self.concurrency is not None:
            self.concurrency.in_flight = max(0, self.concurrency.in_flight - 1)

    cdef void fix(self, double estimate, double actual) noexcept:
        cdef TokenBucket tpm = self.tpm
        cdef double tokens
        if tpm is not None:
            tokens = tpm.tokens + (estimate - actual)
            tpm.tokens = tokens if tokens < tpm.capacity else tpm.capacity

    def correct(self, double estimate, double actual):
        """``settle`` of a request that holds no concurrency slot, without a clock."""
        self.fix(estimate, actual)

    def cancel(self, double now, double estimate):
        """The request never ran: return its tokens and slot."""
        self.settle(now, estimate, 0.0)
