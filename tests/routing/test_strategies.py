"""Balance strategies: exact sequences for the deterministic ones, seeded statistics for the rest."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from modelmux.routing.strategies import (
    Deployment,
    RoundRobin,
    SmoothWeighted,
    availability,
    cost,
    ewma,
    latency,
    least_connections,
    model_specific,
    round_robin,
    weighted,
)


def names(ds: list[Deployment]) -> str:
    return "".join(d.name for d in ds)


def test_round_robin_rotates_and_keeps_fallbacks() -> None:
    ds = [Deployment("a"), Deployment("b"), Deployment("c")]
    rr = RoundRobin()
    assert [names(rr.pick(ds)) for _ in range(4)] == ["abc", "bca", "cab", "abc"]
    assert [names(round_robin(ds, i)) for i in range(3)] == ["abc", "bca", "cab"]


def test_round_robin_skips_unhealthy_and_handles_none() -> None:
    ds = [Deployment("a"), Deployment("b", healthy=False), Deployment("c")]
    rr = RoundRobin()
    assert [rr.pick(ds)[0].name for _ in range(4)] == list("acac")
    assert rr.pick([Deployment("x", healthy=False)]) == []


def test_smooth_weighted_is_nginx_sequence() -> None:
    ds = [Deployment("a", weight=5), Deployment("b", weight=1), Deployment("c", weight=1)]
    sw = SmoothWeighted()
    picks = "".join(sw.pick(ds)[0].name for _ in range(21))
    assert picks == "aabacaa" * 3


def test_smooth_weighted_fallbacks_and_zero_weight() -> None:
    ds = [Deployment("a", weight=2), Deployment("b", weight=1), Deployment("z", weight=0)]
    sw = SmoothWeighted()
    first = weighted(ds, sw)
    assert first[0].name == "a" and sorted(names(first)) == ["a", "b", "z"]
    assert first[-1].name == "z"
    assert "z" not in "".join(sw.pick(ds)[0].name for _ in range(30))
    assert names(SmoothWeighted().pick([Deployment("z", weight=0)])) == "z"


def test_smooth_weighted_proportions_exact_over_a_cycle() -> None:
    ds = [Deployment("a", weight=3), Deployment("b", weight=2), Deployment("c", weight=1)]
    sw = SmoothWeighted()
    counts = Counter(sw.pick(ds)[0].name for _ in range(600))
    assert counts == {"a": 300, "b": 200, "c": 100}


def test_least_connections_ties_by_order() -> None:
    ds = [Deployment("a", in_flight=3), Deployment("b", in_flight=1),
          Deployment("c", in_flight=1), Deployment("d", in_flight=0, healthy=False)]
    assert names(least_connections(ds)) == "bca"


def test_latency_power_of_two_prefers_fast() -> None:
    ds = [Deployment(n, ewma_ttft=t) for n, t in zip("abcd", (0.1, 0.2, 0.4, 0.8))]
    rng = random.Random(1234)
    counts = Counter(latency(ds, rng.random)[0].name for _ in range(4000))
    # With 2 random choices of 4, P(primary) = (n - rank - 1) / C(4, 2): 3/6, 2/6, 1/6, 0.
    assert counts["d"] == 0
    for name, expected in (("a", 0.5), ("b", 1 / 3), ("c", 1 / 6)):
        assert abs(counts[name] / 4000 - expected) < 0.03


def test_latency_orders_and_probes_unknown() -> None:
    ds = [Deployment("a", ewma_ttft=0.5), Deployment("b"), Deployment("c", ewma_ttft=0.1)]
    seq = iter([0.0, 0.0])  # draws a then b
    picked = latency(ds, lambda: next(seq))
    assert names(picked) == "bac"
    assert names(latency(ds[:1], lambda: 0.99)) == "a"
    assert names(latency([*ds, Deployment("x")], lambda: 0.9999999)) == "xcba"


def test_ewma() -> None:
    assert ewma(None, 2.0) == 2.0
    assert ewma(1.0, 2.0, alpha=0.5) == 1.5


def test_cost_cheapest_for_estimate() -> None:
    cheap_in = Deployment("in", input_cost_per_1k=0.1, output_cost_per_1k=2.0)
    cheap_out = Deployment("out", input_cost_per_1k=1.0, output_cost_per_1k=0.2)
    sick = Deployment("sick", healthy=False)
    assert names(cost([cheap_in, cheap_out, sick], 10_000, 100)) == "inout"
    assert names(cost([cheap_in, cheap_out, sick], 100, 10_000)) == "outin"
    assert cheap_in.price(1000, 1000) == pytest.approx(2.1)


def test_availability_by_priority_then_order() -> None:
    ds = [Deployment("a", priority=2), Deployment("b", priority=1),
          Deployment("c", priority=1), Deployment("d", priority=0, healthy=False)]
    assert names(availability(ds)) == "bca"


def test_model_specific_requires_all_tags() -> None:
    ds = [Deployment("a", tags=frozenset({"vision"})),
          Deployment("b", tags=frozenset({"vision", "tools"}), priority=1),
          Deployment("c", tags=frozenset({"vision", "tools"}))]
    assert names(model_specific(ds, {"vision", "tools"})) == "cb"
    assert names(model_specific(ds, [])) == "acb"
    assert model_specific(ds, {"audio"}) == []
