"""A scope's ``x-ratelimit-*`` headers kept encoded: whatever was sent before, the bytes
equal those formatted afresh for the same counts."""

from __future__ import annotations

import pytest

from modelmux.pipeline import ratelimits
from modelmux.pipeline.admit import scope_spec
from modelmux.tenancy.records import Key

pytestmark = pytest.mark.usefixtures("gate_twin")

SPEC = scope_spec("key", "k1", Key(id="k1", prefix="p", hash="h", rpm=600, tpm=90_000))
STEPS = [(600.0, 90_000.0), (599.0, 89_000.0), (598.5, 89_000.0), (598.5, 88_999.2),
         (12.0, 5.0), (0.2, -40.0), (-3.0, 0.0), (599.99, 90_000.0), (599.99, 90_000.0)]


def test_headers_follow_every_change_of_either_count() -> None:
    kept = ratelimits.Meter(SPEC)
    for left in STEPS:
        assert kept.headers(left) == ratelimits.Meter(SPEC).headers(left), left


def test_headers_and_one_kind_alone_agree_after_a_change() -> None:
    kept = ratelimits.Meter(SPEC)
    kept.headers((599.0, 89_000.0))
    kept.headers((12.0, 89_000.0))  # the requests gauge moves, written as part of both
    assert kept.requests(12.0) == ratelimits.Meter(SPEC).requests(12.0)
    assert kept.tokens(89_000.0) == ratelimits.Meter(SPEC).tokens(89_000.0)
    assert dict(kept.requests(12.0)) == {
        b"x-ratelimit-limit-requests": b"600", b"x-ratelimit-remaining-requests": b"12",
        b"x-ratelimit-reset-requests": b"59s"}


def test_a_scope_with_one_kind_of_limit_sends_three() -> None:
    spec = scope_spec("team", "t1", Key(id="t1", prefix="p", hash="h", rpm=7))
    meter = ratelimits.Meter(spec)
    assert meter.headers((0.0, None)) == (
        (b"x-ratelimit-limit-requests", b"7"), (b"x-ratelimit-remaining-requests", b"0"),
        (b"x-ratelimit-reset-requests", b"1m0s"))
