"""``Router.plan`` over live deployment state: each strategy's order, rules and fallback groups.

Pure: mock providers, an injected clock and a seeded random source; distributions are counted
over a bounded number of plans.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from modelmux.config.routing import DeploymentConfig, GroupConfig, RuleConfig
from modelmux.config.providers import MockProviderConfig
from modelmux.providers.mock import MockProvider
from modelmux.routing.memory import MemoryLimits
from modelmux.routing.models import ModelIndex
from modelmux.routing.router import Attempt, Estimate, Router, compile_rules
from modelmux.rules.compiler import RuleError

A, B, C = (MockProvider(MockProviderConfig(name=n, models=["m"])) for n in "abc")


def _index(**group: object) -> ModelIndex:
    deployments = [
        DeploymentConfig(provider="a", weight=1, priority=1, input_cost_per_1k=3.0,
                         tags=["vision"]),
        DeploymentConfig(provider="b", weight=2, priority=0, output_cost_per_1k=1.0),
        DeploymentConfig(provider="c", weight=1, priority=2, tags=["vision"]),
    ]
    config = GroupConfig(name="g", deployments=deployments, **group)  # type: ignore[arg-type]
    fallback = GroupConfig(name="f", deployments=[DeploymentConfig(provider="a", model="alt")])
    return ModelIndex([A, B, C], groups=[config, fallback])


def _plan(router: Router, index: ModelIndex, facts: dict[str, object] | None = None,
          estimate: Estimate | None = None, model: str = "g") -> list[str]:
    plan = router.plan(index, index.group(model), facts or {}, estimate or Estimate())
    return [d.id for d in plan]


def test_least_connections_follows_requests_in_flight() -> None:
    index, router = _index(strategy="least_connections"), Router()
    specs = {d.provider.name: d for d in index.group("g").deployments}
    held = [router.admit(specs["a"], 1), router.admit(specs["b"], 1), router.admit(specs["b"], 1)]
    assert _plan(router, index) == ["c/g", "a/g", "b/g"]
    for attempt in held:
        assert isinstance(attempt, Attempt)
        router.finish(attempt, 1)
    assert _plan(router, index) == ["a/g", "b/g", "c/g"]


def test_latency_prefers_the_lower_ewma_in_most_plans() -> None:
    rng = random.Random(7)
    index, router = _index(strategy="latency"), Router(rand=rng.random)
    router.add(index.specs.values())
    for name, ttft in (("a", 0.05), ("b", 0.5), ("c", 1.0)):
        router.live[f"{name}/g"].ewma_ttft = ttft
    firsts = Counter(_plan(router, index)[0] for _ in range(600))
    # power of two choices over 3: the fastest wins 2 of 3 pairs, the middle 1 of 3, the slowest never
    assert firsts["c/g"] == 0
    assert 340 <= firsts["a/g"] <= 460 and 140 <= firsts["b/g"] <= 260


def test_weighted_distribution_is_exact_over_a_cycle() -> None:
    index, router = _index(strategy="weighted"), Router()
    firsts = Counter(_plan(router, index)[0] for _ in range(400))
    assert firsts == {"b/g": 200, "a/g": 100, "c/g": 100}


def test_cost_uses_the_estimate_and_model_specific_the_group_tags() -> None:
    index = _index(strategy="cost")
    router = Router()
    assert _plan(router, index, estimate=Estimate(1000, 10))[0] == "c/g"  # c is free
    index = _index(strategy="model_specific", tags=["vision"])
    assert _plan(Router(), index) == ["a/g", "c/g"]  # b lacks the tag: never planned


def test_open_circuits_go_last_and_hybrid_orders_by_tier_then_load() -> None:
    index, router = _index(strategy="hybrid"), Router(clock=lambda: 50.0)
    assert _plan(router, index) == ["b/g", "a/g", "c/g"]
    router.live["b/g"].breaker.on_failure(50.0, retry_after=30.0)
    assert _plan(router, index) == ["a/g", "c/g", "b/g"]


def test_rules_pick_a_provider_or_a_group_and_fallback_groups_follow() -> None:
    index = _index(fallback_group="f")
    rules = compile_rules([
        RuleConfig(when='header("x-pin") == "c"', provider="c"),
        RuleConfig(when="prompt_tokens > 100", group="f"),
        RuleConfig(when='user == "u1"', provider="a"),
    ])
    router = Router(rules=rules)
    assert _plan(router, index) == ["b/g", "a/g", "c/g", "a/alt"]
    assert _plan(router, index, {"headers": {"x-pin": "c"}}) == ["c/g"]
    assert _plan(router, index, {"prompt_tokens": 500}) == ["a/alt"]
    assert _plan(router, index, {"user": "u1"}) == ["a/g"]
    index2 = ModelIndex([A, B], groups=[GroupConfig(
        name="only-b", deployments=[DeploymentConfig(provider="b")])])
    assert _plan(router, index2, {"user": "u1", "model": "only-b"}, model="only-b") == [
        "a/only-b"]  # no deployment on a: the model as asked, on a


def test_a_bad_rule_does_not_compile() -> None:
    with pytest.raises(RuleError) as info:
        compile_rules([RuleConfig(when="stream ==", group="g")])
    assert info.value.column == 10


def test_rate_limits_refuse_with_the_wait_and_the_router_settles_tokens() -> None:
    now = [0.0]
    index = ModelIndex([A], groups=[GroupConfig(name="g", deployments=[
        DeploymentConfig(provider="a", rpm=60, tpm=100, max_concurrent=2)])])
    store = MemoryLimits(clock=lambda: now[0])
    router = Router(clock=lambda: now[0], limits=store)
    (spec,) = index.group("g").deployments

    def admit(tokens: float) -> Attempt | float:
        attempt = router.admit(spec, tokens)
        assert attempt is not None
        lease = store.try_acquire(spec, tokens)
        if isinstance(lease, float):
            router.released(attempt)
            return lease
        attempt.lease = lease
        return attempt

    first = admit(80)
    assert isinstance(first, Attempt)
    assert admit(80) == pytest.approx(60 * 60 / 100)  # 60 more tokens at 100/min
    router.finish(first, 20)  # used 20 of the 80 reserved: 60 come back
    router.finish(first, 20)  # idempotent
    second = admit(80)
    assert isinstance(second, Attempt)
    third = admit(0)
    assert isinstance(third, Attempt)
    assert admit(0) == float("inf")  # two in flight: wait for a finish
    assert router.snapshot()["a/g"]["in_flight"] == 2


def test_workers_split_each_limit_so_together_they_never_exceed_it() -> None:
    index = ModelIndex([A], groups=[GroupConfig(name="g", deployments=[
        DeploymentConfig(provider="a", rpm=60, tpm=1000, max_concurrent=5)])])
    (spec,) = index.group("g").deployments
    limits = MemoryLimits(share=2).of(spec)
    assert limits.rpm and limits.tpm and limits.concurrency
    assert (limits.rpm.capacity, limits.tpm.capacity, limits.concurrency.limit) == (30, 500, 2)


def test_ad_hoc_model_names_past_the_cap_share_their_providers_state() -> None:
    from modelmux.routing import router as router_module
    from modelmux.routing.models import DeploymentSpec

    router = Router()
    for n in range(router_module.MAX_LIVE):
        router.state(DeploymentSpec(A, f"m{n}"))
    extra = [router.state(DeploymentSpec(A, f"x{n}")) for n in range(3)]
    assert len(router.live) == router_module.MAX_LIVE + 1
    assert extra[0] is extra[1] is extra[2] is router.live["a/*"]
    attempt = router.admit(DeploymentSpec(A, "x9"), 1)
    assert isinstance(attempt, Attempt) and attempt.spec.model == "x9"  # sent as asked
