"""The circuit breaker, driven by an explicit clock."""

from __future__ import annotations

import pytest

from modelmux.routing.breaker import BreakerPolicy, BreakerState, CircuitBreaker

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def breaker(**kw: float) -> CircuitBreaker:
    base = {"consecutive_failures": 3, "min_requests": 10, "error_rate": 0.5, "window": 60.0,
            "cooldown": 10.0, "cooldown_multiplier": 2.0, "max_cooldown": 35.0}
    base.update(kw)
    return CircuitBreaker(BreakerPolicy(**base))  # type: ignore[arg-type]


def test_opens_after_consecutive_failures_and_success_resets_count() -> None:
    b = breaker()
    b.on_failure(0.0)
    b.on_failure(1.0)
    b.on_success(2.0)
    b.on_failure(3.0)
    b.on_failure(4.0)
    assert b.state(4.0) is CLOSED and b.allow(4.0)
    b.on_failure(5.0)
    assert b.state(5.0) is OPEN and not b.allow(5.0)
    assert not b.allow(14.999)
    assert b.state(15.0) is HALF


def test_opens_on_error_rate_once_min_requests_seen() -> None:
    b = breaker(consecutive_failures=100)
    for i in range(8):  # alternate: 50 % errors, but under min_requests at first
        (b.on_failure if i % 2 else b.on_success)(float(i))
    assert b.state(8.0) is CLOSED
    b.on_success(8.0)
    b.on_failure(9.0)  # 10 requests, 5 failures
    assert b.state(9.0) is OPEN


def test_error_rate_window_slides() -> None:
    b = breaker(consecutive_failures=100, min_requests=4)
    b.on_failure(0.0)
    b.on_failure(1.0)
    b.on_success(2.0)
    for t in (70.0, 71.0, 72.0):  # the early failures have left the window
        b.on_success(t)
    b.on_failure(73.0)
    assert b.state(73.0) is CLOSED
    assert b.snapshot(73.0)["window_requests"] == 4


def test_half_open_limits_probes_and_closes_on_success() -> None:
    b = breaker(half_open_probes=2)
    for t in range(3):
        b.on_failure(float(t))
    assert b.allow(12.0) and b.allow(12.0) and not b.allow(12.0)
    b.release(12.5)
    assert b.allow(12.5)
    b.on_success(13.0)
    assert b.state(13.0) is CLOSED and b.allow(13.0)
    assert b.snapshot(13.0)["cooldown"] == 10.0


def test_reopen_extends_cooldown_multiplicatively_with_cap() -> None:
    b = breaker()
    for t in range(3):
        b.on_failure(float(t))  # open at 2 for 10
    now = 12.0
    for expected in (20.0, 35.0, 35.0):
        assert b.allow(now)
        b.on_failure(now)
        assert b.state(now + expected - 0.001) is OPEN
        assert b.state(now + expected) is HALF
        now += expected
    assert b.allow(now)
    b.on_success(now)
    for t in range(3):
        b.on_failure(now + t)
    assert b.state(now + 2 + 9.9) is OPEN and b.state(now + 12) is HALF  # back to base cooldown


def test_retry_after_opens_for_exactly_that_long() -> None:
    b = breaker()
    b.on_failure(100.0, retry_after=7.5)
    assert b.snapshot(100.0)["open_for"] == 7.5
    assert b.state(107.49) is OPEN
    assert b.state(107.5) is HALF
    b.on_failure(200.0, retry_after=-3.0)
    assert b.state(200.0) is HALF


def test_late_outcomes_while_open_change_nothing() -> None:
    b = breaker()
    for t in range(3):
        b.on_failure(float(t))
    b.on_success(3.0)
    b.on_failure(4.0)
    assert b.state(11.9) is OPEN and b.state(12.0) is HALF


def test_snapshot_shape() -> None:
    b = breaker()
    b.on_failure(0.0)
    snap = b.snapshot(1.0)
    assert snap["state"] == "closed"
    assert snap["consecutive_failures"] == 1
    assert snap["window_failures"] == 1 and snap["error_rate"] == 1.0
    assert snap["times_opened"] == 0


@pytest.mark.parametrize("kw", [{"consecutive_failures": 0}, {"error_rate": 0.0},
                                {"cooldown": 50.0}, {"cooldown_multiplier": 0.5}])
def test_policy_validation(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        breaker(**kw)


def test_hold_open_keeps_a_circuit_open_at_least_that_long_without_counting_it() -> None:
    b = CircuitBreaker(BreakerPolicy(consecutive_failures=1, cooldown=10))
    assert b.hold_open(100.0, 5.0)
    assert b.state(100.0) is BreakerState.OPEN and b.open_for(100.0) == 5.0
    assert b.times_opened == 0 and not b.allow(104.0)
    assert not b.hold_open(101.0, 1.0)  # already open for longer: nothing changes
    assert b.hold_open(101.0, 8.0) and b.open_for(101.0) == 8.0
    assert b.state(109.0) is BreakerState.HALF_OPEN and b.allow(109.0)
    b.on_success(109.0)
    assert b.state(109.0) is BreakerState.CLOSED and not b.hold_open(109.0, 0.0)
