"""``modelmux.bench.stats``: nearest-rank percentiles, exact on known samples, and the histogram."""

from __future__ import annotations

import random

import pytest

from modelmux.bench.stats import LogHistogram, percentile_sorted, rank

QUANTILES = [0.0, 0.1, 1.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0]


@pytest.mark.parametrize(("q", "count", "expected"), [
    (50.0, 1, 1), (0.0, 5, 1), (100.0, 5, 5), (50.0, 4, 2), (50.0, 5, 3),
    (99.9, 1000, 999), (99.9, 1001, 1000), (99.0, 100, 99), (90.0, 10, 9), (0.1, 1000, 1),
])
def test_rank_is_exact(q: float, count: int, expected: int) -> None:
    assert rank(q, count) == expected


def test_percentile_sorted_on_one_to_hundred() -> None:
    values = list(range(1, 101))
    assert [percentile_sorted(values, q) for q in (50, 90, 99, 99.9, 100)] == [50, 90, 99, 100, 100]
    with pytest.raises(ValueError):
        percentile_sorted([], 50)
    with pytest.raises(ValueError):
        percentile_sorted(values, 100.5)


def test_histogram_is_exact_below_its_linear_range() -> None:
    rng = random.Random(7)
    values = [rng.randrange(0, 1024) for _ in range(5000)]
    hist = LogHistogram(bits=10)
    for value in values:
        hist.record(value)
    ordered = sorted(values)
    for q in QUANTILES:
        assert hist.percentile(q) == percentile_sorted(ordered, q), q
    assert (hist.min, hist.max, hist.count) == (ordered[0], ordered[-1], len(values))
    assert hist.mean() == sum(values) / len(values)


def test_histogram_known_samples() -> None:
    hist = LogHistogram(bits=4)  # exact below 16; above, 8 buckets per power of two
    for value in (1, 2, 3, 4, 100, 1000):
        hist.record(value)
    assert hist.percentile(50) == 3
    assert hist.percentile(66.6) == 4
    assert hist.percentile(83.3) == 103  # 100 shares [96, 103] in this layout
    assert hist.percentile(100) == 1000  # capped at the exact max
    assert hist.summary(scale=1.0) == {
        "p50": 3, "p90": 1000, "p99": 1000, "p99.9": 1000, "max": 1000, "min": 1, "mean": 185.0}


@pytest.mark.parametrize("bits", [2, 4, 10])
def test_buckets_tile_the_integers(bits: int) -> None:
    hist = LogHistogram(bits=bits)
    index = 0
    for value in range(1 << 16):
        found = hist.index(value)
        assert found in (index, index + 1), value
        index = found
        assert hist.highest(found) >= value
        assert hist.index(hist.highest(found)) == found
    for value in (2**40 + 12345, 2**62 + 1):
        top = hist.highest(hist.index(value))
        assert value <= top <= value + (value >> (bits - 1))


def test_histogram_error_is_bounded_on_wide_samples() -> None:
    rng = random.Random(11)
    values = [int(rng.lognormvariate(13, 2)) for _ in range(3000)]
    hist = LogHistogram(bits=10)
    for value in values:
        hist.record(value)
    ordered = sorted(values)
    for q in QUANTILES:
        true = percentile_sorted(ordered, q)
        got = hist.percentile(q)
        assert got == min(hist.highest(hist.index(true)), hist.max)
        assert true <= got <= true * (1 + 2**-9)


def test_record_times_and_merge() -> None:
    once, many, merged = LogHistogram(), LogHistogram(), LogHistogram()
    for _ in range(7):
        once.record(5000)
    many.record(5000, 7)
    many.record(3, 0)  # zero times records nothing
    assert once.counts == many.counts and (once.count, once.total) == (many.count, many.total)
    other = LogHistogram()
    other.record(1)
    merged.merge(once)
    merged.merge(other)
    assert (merged.count, merged.min, merged.max, merged.total) == (8, 1, 5000, 35001)
    with pytest.raises(ValueError):
        merged.merge(LogHistogram(bits=8))


def test_empty_and_invalid() -> None:
    hist = LogHistogram()
    assert hist.summary() is None
    with pytest.raises(ValueError):
        hist.percentile(50)
    with pytest.raises(ValueError):
        hist.record(-1)
    with pytest.raises(ValueError):
        LogHistogram(bits=1)
