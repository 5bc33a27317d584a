"""Token buckets, concurrency and the all-or-nothing combination."""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import ModuleType

import pytest

from modelmux.routing.limits import Concurrency, DeploymentLimits, TokenBucket, per_minute
from tests.twins import import_twin, twin_params

TWIN_NAMES = ("Concurrency", "DeploymentLimits", "TokenBucket", "per_minute")


@pytest.fixture(autouse=True, scope="module",
                params=twin_params("limits", "modelmux.routing._limits_py"))
def limits_twin(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Every test here runs on each twin: the names above are the twin's while it is used."""
    twin = import_twin(request.param)
    with pytest.MonkeyPatch.context() as patch:
        for name in TWIN_NAMES:
            patch.setitem(globals(), name, getattr(twin, name))
        yield twin


def test_bucket_grants_then_reports_wait() -> None:
    b = per_minute(60)  # 1 per second, burst 60
    for _ in range(60):
        assert b.try_acquire(0.0) == 0.0
    assert b.try_acquire(0.0) == pytest.approx(1.0)
    assert b.try_acquire(0.5) == pytest.approx(0.5)
    assert b.try_acquire(1.0) == 0.0


def test_bucket_never_exceeds_capacity_and_ignores_clock_going_back() -> None:
    b = TokenBucket(10, 1.0)
    assert b.available(1000.0) == 10
    b.try_acquire(1000.0, 10)
    assert b.available(500.0) == 0
    assert b.available(1003.0) == pytest.approx(3.0)


def test_cost_over_capacity_is_never_granted() -> None:
    assert TokenBucket(10, 1.0).try_acquire(0.0, 11) == math.inf


def test_concurrency_gate() -> None:
    c = Concurrency(2)
    assert c.try_acquire(0.0) == 0.0 and c.try_acquire(0.0) == 0.0
    assert c.try_acquire(0.0) == math.inf
    c.release()
    assert c.try_acquire(0.0) == 0.0


def test_combined_is_all_or_nothing_and_settles() -> None:
    lim = DeploymentLimits(rpm=per_minute(100), tpm=per_minute(1000), concurrency=Concurrency(5))
    assert lim.try_acquire(0.0, 800) == 0.0
    wait = lim.try_acquire(0.0, 400)  # TPM refuses; nothing else taken
    assert wait == pytest.approx(200 / (1000 / 60))
    assert lim.rpm is not None and lim.rpm.available(0.0) == 99
    assert lim.concurrency is not None and lim.concurrency.in_flight == 1
    lim.settle(0.0, estimate=800, actual=300)  # overestimate returned
    assert lim.tpm is not None and lim.tpm.available(0.0) == pytest.approx(700)
    assert lim.concurrency.in_flight == 0
    assert lim.try_acquire(0.0, 700) == 0.0
    lim.settle(0.0, estimate=700, actual=1000)  # underestimate goes into debt
    assert lim.tpm.available(0.0) == pytest.approx(-300)
    assert lim.try_acquire(0.0, 1) == pytest.approx(301 / (1000 / 60))


def test_cancel_returns_tokens_and_slot() -> None:
    lim = DeploymentLimits(tpm=per_minute(100), concurrency=Concurrency(1))
    assert lim.try_acquire(0.0, 100) == 0.0
    assert lim.try_acquire(0.0, 1) == math.inf
    lim.cancel(0.0, 100)
    assert lim.try_acquire(0.0, 100) == 0.0


def test_validation() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1.0)
    with pytest.raises(ValueError):
        Concurrency(0)


def test_a_refusal_keeps_the_refill_it_read_and_a_grant_takes_from_it() -> None:
    lim = DeploymentLimits(rpm=per_minute(60), tpm=per_minute(600))
    assert lim.try_acquire(0.0, 600) == 0.0
    assert lim.try_acquire(30.0, 400) == pytest.approx(10.0)  # 300 tokens back; 100 short
    assert lim.tpm is not None and lim.rpm is not None
    assert lim.tpm.tokens == pytest.approx(300)  # what ``MemoryLimits.left`` reports next
    assert lim.rpm.tokens == pytest.approx(60)
    assert lim.try_acquire(20.0, 1) == 0.0  # a clock going back refills nothing
    assert lim.tpm.tokens == pytest.approx(299) and lim.rpm.tokens == pytest.approx(59)
    assert lim.try_acquire(40.0, 100) == 0.0
    assert lim.tpm.available(40.0) == pytest.approx(299)  # 100 refilled, 100 taken


def test_correct_comes_to_the_same_count_as_settle() -> None:
    settled = DeploymentLimits(tpm=per_minute(600))  # 10 tokens a second
    corrected = DeploymentLimits(tpm=per_minute(600))
    for when, settle_at, estimate, actual, expected in (
            (0.0, 6.0, 500, 100, 560),  # 100 left, 60 refilled, 400 back
            (6.0, 40.0, 500, 100, 600),  # refilled to the cap either way
            (40.0, 41.0, 550, 700, 600 - 700 + 10)):  # the estimate was short: into debt
        for lim in (settled, corrected):
            assert lim.try_acquire(when, estimate) == 0.0
        settled.settle(settle_at, estimate, actual)
        corrected.correct(estimate, actual)
        assert settled.tpm is not None and corrected.tpm is not None
        assert corrected.tpm.available(settle_at) == pytest.approx(expected)
        assert settled.tpm.available(settle_at) == pytest.approx(expected)
