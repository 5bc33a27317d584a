"""The gate's twins agree (hypothesis): the native ``modelmux._speedups.gate`` and the pure
``_gate_py`` leave the same token buckets after any run of grants and corrections, write the
same ``x-ratelimit-*`` bytes for any counts, and let in, refuse and settle the same requests."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmux.errors import RateLimited
from modelmux.pipeline import _gate_py
from modelmux.pipeline.admit import AdmitStage, scope_spec
from modelmux.routing import _limits_py
from modelmux.routing.limits import DeploymentLimits
from modelmux.routing.memory import MemoryLimits, split_limits
from modelmux.tenancy.records import Key
from tests.pipeline.conftest import use_twins
from tests.pipeline.test_admit import Clock, answer, context, key, who
from tests.twins import import_twin

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

limits = st.none() | st.integers(min_value=1, max_value=10**12)
counts = (st.floats(min_value=-1e13, max_value=1e13, allow_nan=False)
          | st.sampled_from([0.0, 0.5, 1.0, -0.0, math.inf, -math.inf, 59.999, 999.5])
          | st.integers(min_value=-10**6, max_value=10**6).map(float))
steps = st.floats(min_value=-5.0, max_value=600.0, allow_nan=False) | st.just(0.0)
costs = st.floats(min_value=0.0, max_value=1e13, allow_nan=False) | st.integers(0, 5000).map(float)
ops = st.lists(st.one_of(
    st.tuples(st.just("acquire"), steps, costs),
    st.tuples(st.just("correct"), costs, costs),
    st.tuples(st.just("release"), st.just(0.0), st.just(0.0))), max_size=40)


@pytest.fixture(scope="module")
def native() -> ModuleType:
    return import_twin("modelmux._speedups.gate")


@pytest.fixture(scope="module")
def native_limits() -> ModuleType:
    return import_twin("modelmux._speedups.limits")


def split(limits: ModuleType, spec: Any, share: int) -> DeploymentLimits:
    """``split_limits`` with the buckets of the ``limits`` twin."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("modelmux.routing.memory.DeploymentLimits", limits.DeploymentLimits)
        patch.setattr("modelmux.routing.memory.Concurrency", limits.Concurrency)
        patch.setattr("modelmux.routing.memory.per_minute", limits.per_minute)
        return split_limits(spec, 100.0, share)


def state(buckets: DeploymentLimits) -> tuple[Any, ...]:
    rpm, tpm, slots = buckets.rpm, buckets.tpm, buckets.concurrency
    return (None if rpm is None else (rpm.tokens, rpm._last),
            None if tpm is None else (tpm.tokens, tpm._last),
            None if slots is None else slots.in_flight)


@PROPERTY
@given(rpm=limits, tpm=limits, parallel=st.none() | st.integers(1, 4),
       share=st.integers(1, 3), run=ops)
def test_the_bucket_arithmetic_is_the_same(native: ModuleType, native_limits: ModuleType,
                                           rpm: int | None, tpm: int | None,
                                           parallel: int | None, share: int,
                                           run: list[tuple[str, float, float]]) -> None:
    """The native gate on native buckets, and on pure ones (a mixed build), against the pure
    gate on pure buckets."""
    spec = scope_spec("key", "k", Key(id="k", prefix="p", hash="h", rpm=rpm, tpm=tpm,
                                      max_parallel=parallel))
    pure = split(_limits_py, spec, share)
    fast, mixed = split(native_limits, spec, share), split(_limits_py, spec, share)
    now = 100.0
    for op, a, b in run:
        if op == "acquire":
            now += a
            wait = _gate_py.acquire(pure, now, b)
            assert native.acquire(fast, now, b) == wait == native.acquire(mixed, now, b)
        elif op == "correct":
            _gate_py.correct(pure, a, b)
            native.correct(fast, a, b)
            native.correct(mixed, a, b)
        elif pure.concurrency is not None:
            for buckets in (pure, fast, mixed):
                buckets.concurrency.release()  # type: ignore[union-attr]
        assert state(fast) == state(pure) == state(mixed), (op, a, b)


@PROPERTY
@given(rpm=limits, tpm=limits, run=st.lists(st.tuples(counts, counts), max_size=30),
       alone=st.lists(st.tuples(st.booleans(), counts), max_size=10))
def test_the_header_bytes_are_the_same(native: ModuleType, rpm: int | None, tpm: int | None,
                                       run: list[tuple[float, float]],
                                       alone: list[tuple[bool, float]]) -> None:
    spec = scope_spec("key", "k", Key(id="k", prefix="p", hash="h", rpm=rpm, tpm=tpm))
    pure, fast = _gate_py.Meter(spec), native.Meter(spec)
    for r, t in run:
        left = (r if rpm else None, t if tpm else None)
        assert fast.headers(left) == pure.headers(left), left
        assert fast.seen == pure.seen
    for requests, left_ in alone:  # one kind, as ``describe`` asks for several scopes
        if requests and rpm:
            assert fast.requests(left_) == pure.requests(left_)
        elif not requests and tpm:
            assert fast.tokens(left_) == pure.tokens(left_)
    if run:  # the pairs kept from one kind's call make the same tuple of both
        left = (run[0][0] if rpm else None, run[0][1] if tpm else None)
        assert fast.headers(left) == pure.headers(left)


@given(ms=st.integers(min_value=-10**5, max_value=10**9) | st.integers())
@settings(max_examples=300, deadline=None)
def test_durations_are_the_same(native: ModuleType, ms: int) -> None:
    assert native.duration_ms(ms) == _gate_py.duration_ms(ms)


def test_a_nan_count_is_refused_by_both(native: ModuleType) -> None:
    spec = scope_spec("key", "k", Key(id="k", prefix="p", hash="h", rpm=5))
    for twin in (_gate_py, native):
        with pytest.raises(ValueError, match="NaN"):
            twin.Meter(spec).headers((math.nan, None))


requests = st.lists(st.tuples(
    st.floats(min_value=0.0, max_value=30.0, allow_nan=False),  # seconds since the last
    st.none() | st.integers(1, 3000),  # max_tokens
    st.integers(0, 400),  # prompt padding (bytes)
    st.none() | st.tuples(st.integers(0, 3000), st.integers(0, 3000)),  # usage
    st.booleans()), min_size=1, max_size=25)  # an error answered


def _serve(twin: ModuleType, limits: ModuleType, limits_of: dict[str, Any], run: list[Any],
           share: int) -> list[Any]:
    """The headers, refusals and bucket states of ``run`` through an admit stage whose gate
    and meters are ``twin``'s, on ``limits``' buckets."""
    with pytest.MonkeyPatch.context() as patch:
        use_twins(patch, twin, limits)
        clock = Clock()
        stage = AdmitStage(MemoryLimits(share=share, clock=clock))
        ident = who(key(**limits_of))
        seen: list[Any] = []
        for wait, max_tokens, pad, usage, failed in run:
            clock.now += wait
            extra = b"" if max_tokens is None else b', "max_tokens": %d' % max_tokens
            body = b'{"model": "m"%s, "messages": [{"role": "user", "content": "%s"}]}' % (
                extra, b"x" * pad)
            ctx = context(ident, body)
            meters = stage.meters(ident)
            assert meters and type(meters[0]) is twin.Meter
            try:
                stage.admit_here(ctx, meters)
            except RateLimited as exc:
                seen.append(("refused", exc.message, exc.headers, ctx.response_headers))
                continue
            seen.append(ctx.response_headers)
            if failed:
                ctx.status, ctx.error = 502, RuntimeError("upstream")
                stage.on_answer(ctx)
            else:
                answer(stage, ctx, usage)
            seen.append(state(stage.limits.of(meters[0].spec)))  # type: ignore[attr-defined]
        return seen


@PROPERTY
@given(rpm=st.none() | st.integers(1, 50), tpm=st.none() | st.integers(100, 20_000),
       parallel=st.none() | st.integers(1, 2), share=st.integers(1, 2), run=requests)
def test_the_gates_admit_and_settle_alike(native: ModuleType, native_limits: ModuleType,
                                          rpm: int | None, tpm: int | None,
                                          parallel: int | None, share: int,
                                          run: list[Any]) -> None:
    if rpm is None and tpm is None and parallel is None:
        rpm = 3
    limits_of = {"rpm": rpm, "tpm": tpm, "max_parallel": parallel}
    expected = _serve(_gate_py, _limits_py, limits_of, run, share)
    assert _serve(native, native_limits, limits_of, run, share) == expected
