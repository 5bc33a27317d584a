"""``[[cache.rules]]`` over the routing facts, and the new facts temperature, seed and
deterministic."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelmux.cache.rules import CacheRules
from modelmux.config.features import CacheRule
from modelmux.routing.facts import request_facts
from modelmux.rules.compiler import RuleError
from modelmux.schemas.openai_chat import request_decoder


def facts(**fields: Any) -> dict[str, object]:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                       **fields}).encode()
    return request_facts(request_decoder.decode(body), body, [])


def test_deterministic_is_temperature_zero_or_a_seed() -> None:
    assert facts(temperature=0)["deterministic"] is True
    assert facts(temperature=0.0, seed=None)["deterministic"] is True
    assert facts(temperature=0.7, seed=3)["deterministic"] is True
    assert facts(temperature=0.7)["deterministic"] is False
    assert facts()["deterministic"] is False
    found = facts(temperature=0.5, seed=9)
    assert found["temperature"] == 0.5 and found["seed"] == 9
    assert "temperature" not in facts() and "seed" not in facts()


def test_no_rules_allow_everything() -> None:
    rules = CacheRules([])
    assert not rules and rules.allow(facts())


def test_cache_if_must_match_and_skip_if_wins() -> None:
    rules = CacheRules([CacheRule(cache_if="deterministic == true"),
                        CacheRule(skip_if="stream == true")])
    assert rules.allow(facts(temperature=0))
    assert not rules.allow(facts(temperature=1))
    assert not rules.allow(facts(temperature=0, stream=True))
    only_skip = CacheRules([CacheRule(skip_if="temperature > 0.5")])
    assert only_skip.allow(facts()) and only_skip.allow(facts(temperature=0.2))
    assert not only_skip.allow(facts(temperature=0.9))


@pytest.mark.parametrize("rule", [CacheRule(), CacheRule(cache_if="stream", skip_if="stream"),
                                  CacheRule(cache_if="seed == true")])
def test_bad_rules_are_refused(rule: CacheRule) -> None:
    with pytest.raises(RuleError):
        CacheRules([rule])
