"""Latency statistics for ``modelmux bench``: a log-bucket histogram and nearest-rank percentiles.

Pure bookkeeping on integers (nanoseconds); no clock, no I/O. Percentiles use the nearest-rank
definition (the smallest value with at least ``ceil(q/100 * n)`` samples at or below it), as
HdrHistogram and wrk do; a bucket reports its highest equivalent value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)


def rank(q: float, count: int) -> int:
    """The 1-based rank of percentile ``q`` among ``count`` samples (exact, no float rounding)."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside [0, 100]")
    wanted = Fraction(str(q)) * count / 100
    return max(1, -(-wanted.numerator // wanted.denominator))


def percentile_sorted(values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending sequence; the reference the histogram approximates.

    Raises:
        ValueError: ``values`` is empty or ``q`` is outside [0, 100].
    """
    if not values:
        raise ValueError("no samples")
    return values[rank(q, len(values)) - 1]


class LogHistogram:
    """Counts of non-negative integers in log-linear buckets (HdrHistogram's layout).

    Values below ``2**bits`` are exact; above, each power of two is split into ``2**(bits-1)``
    buckets, so a reported value is at most ``2**(1-bits)`` above the true one. Min, max, sum
    and count are exact.
    """

    __slots__ = ("bits", "count", "counts", "half", "max", "min", "total")

    def __init__(self, bits: int = 10) -> None:
        if not 2 <= bits <= 20:
            raise ValueError("bits must be in [2, 20]")
        self.bits = bits
        self.half = 1 << (bits - 1)
        self.counts = [0] * ((64 - bits + 2) * self.half + self.half)
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def index(self, value: int) -> int:
        """The bucket holding ``value``."""
        shift = value.bit_length() - self.bits
        if shift <= 0:
            return value
        return shift * self.half + (value >> shift)

    def highest(self, index: int) -> int:
        """The largest value that lands in bucket ``index``."""
        if index < 2 * self.half:
            return index
        shift = (index - self.half) // self.half
        mantissa = index - shift * self.half
        return ((mantissa + 1) << shift) - 1

    def record(self, value: int, times: int = 1) -> None:
        """Count ``value`` ``times`` times.

        Raises:
            ValueError: ``value`` is negative.
        """
        if value < 0:
            raise ValueError("negative value")
        if times <= 0:
            return
        shift = value.bit_length() - self.bits
        self.counts[value if shift <= 0 else shift * self.half + (value >> shift)] += times
        if self.count == 0 or value < self.min:
            self.min = value
        self.max = max(self.max, value)
        self.count += times
        self.total += value * times

    def merge(self, other: LogHistogram) -> None:
        """Add ``other``'s counts (same ``bits``) to this histogram."""
        if other.bits != self.bits:
            raise ValueError("histograms differ in bits")
        if other.count == 0:
            return
        for i, n in enumerate(other.counts):
            if n:
                self.counts[i] += n
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def percentile(self, q: float) -> int:
        """Nearest-rank percentile ``q``, capped at the exact max.

        Raises:
            ValueError: the histogram is empty or ``q`` is outside [0, 100].
        """
        if self.count == 0:
            raise ValueError("no samples")
        target = rank(q, self.count)
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= target:
                return min(self.highest(i), self.max)
        return self.max  # pragma: no cover - counts always sum to count

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def summary(self, scale: float = 1e-6, quantiles: Iterable[float] = PERCENTILES
                ) -> dict[str, float] | None:
        """``{"p50": .., "p90": .., "p99": .., "p99.9": .., "max": .., "min": .., "mean": ..}``.

        Values are multiplied by ``scale`` (nanoseconds to milliseconds by default); ``None``
        when empty.
        """
        if self.count == 0:
            return None
        out = {f"p{q:g}": round(self.percentile(q) * scale, 6) for q in quantiles}
        out["max"] = round(self.max * scale, 6)
        out["min"] = round(self.min * scale, 6)
        out["mean"] = round(self.mean() * scale, 6)
        return out
