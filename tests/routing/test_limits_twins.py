"""The limits' twins agree (hypothesis): the native ``modelmux._speedups.limits`` and the pure
``_limits_py`` answer every call alike and leave the same floats in their buckets."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmux.routing import _limits_py
from tests.twins import import_twin

PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
amounts = (st.floats(min_value=0.0, max_value=1e9, allow_nan=False)
           | st.integers(0, 5000).map(float))
steps = st.floats(min_value=-10.0, max_value=120.0, allow_nan=False)
calls = st.lists(st.tuples(
    st.sampled_from(["try_acquire", "settle", "correct", "cancel", "release",
                     "rpm.available", "tpm.wait_time", "tpm.give_back", "tpm.try_acquire"]),
    steps, amounts, amounts), max_size=40)


@pytest.fixture(scope="module")
def native() -> ModuleType:
    return import_twin("modelmux._speedups.limits")


def build(twin: ModuleType, rpm: float | None, tpm: float | None, slots: int | None) -> Any:
    return twin.DeploymentLimits(None if rpm is None else twin.per_minute(rpm, 50.0),
                                 None if tpm is None else twin.per_minute(tpm, 50.0),
                                 None if slots is None else twin.Concurrency(slots))


def state(limits: Any) -> tuple[Any, ...]:
    rpm, tpm, slots = limits.rpm, limits.tpm, limits.concurrency
    return tuple(None if b is None else (b.tokens, b._last, b.capacity, b.rate)
                 for b in (rpm, tpm)) + (None if slots is None else slots.in_flight,)


def call(limits: Any, what: str, now: float, a: float, b: float) -> Any:
    if what == "try_acquire":
        return limits.try_acquire(now, a)
    if what == "settle":
        return limits.settle(now, a, b)
    if what == "correct":
        return limits.correct(a, b)
    if what == "cancel":
        return limits.cancel(now, a)
    if what == "release":
        return None if limits.concurrency is None else limits.concurrency.release()
    bucket = limits.rpm if what.startswith("rpm") else limits.tpm
    if bucket is None:
        return None
    method = what.split(".")[1]
    return getattr(bucket, method)(now) if method == "available" else getattr(
        bucket, method)(now, a)


@PROPERTY
@given(rpm=st.none() | st.integers(1, 10**7).map(float),
       tpm=st.none() | st.floats(min_value=0.5, max_value=1e12),
       slots=st.none() | st.integers(1, 5), run=calls)
def test_every_call_answers_and_counts_alike(native: ModuleType, rpm: float | None,
                                             tpm: float | None, slots: int | None,
                                             run: list[tuple[str, float, float, float]]) -> None:
    pure, fast = build(_limits_py, rpm, tpm, slots), build(native, rpm, tpm, slots)
    now = 50.0
    for what, step, a, b in run:
        now += step
        assert call(fast, what, now, a, b) == call(pure, what, now, a, b), what
        assert state(fast) == state(pure), what


def test_both_refuse_what_cannot_be_a_limit(native: ModuleType) -> None:
    for twin in (_limits_py, native):
        with pytest.raises(ValueError, match="positive"):
            twin.TokenBucket(0, 1.0)
        with pytest.raises(ValueError, match="at least 1"):
            twin.Concurrency(0)
