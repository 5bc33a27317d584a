"""The pure retry policy: retryable statuses, jittered backoff, Retry-After parsing.

Clock and random source are injected; Hypothesis checks the bounds hold for any input.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelmux.upstream.retry import backoff_delay, is_retryable_status, parse_retry_after

NOW = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 529])
def test_retryable_statuses(status: int) -> None:
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 408, 413, 422, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    assert not is_retryable_status(status)


def test_full_jitter_doubles_up_to_the_cap() -> None:
    top = [
        backoff_delay(n, base=0.5, cap=8.0, retry_after=None, rand=lambda: 1.0) for n in range(7)
    ]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff_delay(3, base=0.5, cap=8.0, retry_after=None, rand=lambda: 0.25) == 1.0
    assert backoff_delay(3, base=0.5, cap=8.0, retry_after=None, rand=lambda: 0.0) == 0.0


def test_retry_after_is_a_floor_under_the_cap() -> None:
    assert backoff_delay(0, base=0.5, cap=30.0, retry_after=7.0, rand=lambda: 0.5) == 7.0
    assert backoff_delay(6, base=0.5, cap=30.0, retry_after=1.0, rand=lambda: 1.0) == 30.0
    assert backoff_delay(0, base=0.5, cap=30.0, retry_after=120.0, rand=lambda: 0.5) == 30.0


def test_huge_attempt_does_not_overflow() -> None:
    assert backoff_delay(10_000, base=1.0, cap=5.0, retry_after=None, rand=lambda: 1.0) == 5.0


def test_negative_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        backoff_delay(-1, base=1.0, cap=5.0, retry_after=None, rand=lambda: 0.5)


@given(
    attempt=st.integers(0, 2000),
    base=st.floats(0, 100, allow_nan=False),
    cap=st.floats(0, 3600, allow_nan=False),
    retry_after=st.none() | st.floats(0, 10_000, allow_nan=False),
    r=st.floats(0, 1, exclude_max=True),
)
def test_delay_is_always_within_bounds(
    attempt: int, base: float, cap: float, retry_after: float | None, r: float
) -> None:
    """Between max(0, min(retry_after, cap)) and cap, and never above the jitter ceiling
    unless Retry-After asked for more."""
    delay = backoff_delay(attempt, base=base, cap=cap, retry_after=retry_after, rand=lambda: r)
    assert 0.0 <= delay <= cap
    if retry_after is not None:
        assert delay >= min(retry_after, cap)
    else:
        assert delay <= min(cap, base * 2.0 ** min(attempt, 64))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"120", 120.0),
        (b" 5 ", 5.0),
        (b"0", 0.0),
        (b"1.5", 1.5),
        (b"Sun, 06 Nov 1994 08:50:07 GMT", 30.0),
        (b"Sunday, 06-Nov-94 08:49:47 GMT", 10.0),
        (b"Sun Nov  6 08:49:57 1994", 20.0),
        (b"Sun, 06 Nov 1994 08:00:00 GMT", 0.0),
        (b"-1", None),
        (b"", None),
        (b"soon", None),
        (b"1e9", None),
        (b"\xff\xfe", None),
    ],
)
def test_parse_retry_after(value: bytes, expected: float | None) -> None:
    assert parse_retry_after(value, now=lambda: NOW) == expected


@given(st.binary(max_size=64))
def test_parse_retry_after_never_raises(value: bytes) -> None:
    """Any bytes parse to a non-negative number of seconds, or None."""
    result = parse_retry_after(value, now=lambda: NOW)
    assert result is None or result >= 0.0
