"""Operator controls below the API: pinned breakers, limit overrides, the overrides file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmux.config.overrides import Overrides
from modelmux.config.routing import DeploymentConfig, GroupConfig
from modelmux.routing.breaker import BreakerState, CircuitBreaker
from modelmux.routing.models import ModelIndex


class Ref:
    def __init__(self, name: str, models: list[str]) -> None:
        self.name, self.models = name, models


def test_a_pinned_breaker_stays_open_past_any_cooldown_until_reset() -> None:
    breaker = CircuitBreaker()
    breaker.pin_open(0.0)
    assert breaker.state(10_000.0) is BreakerState.OPEN and not breaker.allow(10_000.0)
    assert breaker.snapshot(10_000.0)["pinned"] is True and breaker.times_opened == 0
    breaker.reset(10_001.0)
    assert breaker.state(10_001.0) is BreakerState.CLOSED and breaker.allow(10_001.0)


def test_limit_overrides_replace_configured_limits_everywhere_the_spec_is_used() -> None:
    group = GroupConfig(name="g", deployments=[DeploymentConfig(provider="p", model="m", rpm=5)])
    index = ModelIndex([Ref("p", ["m", "n"])], groups=[group],
                       limits={"p/m": {"rpm": 50}, "p/n": {"tpm": 1000}})
    assert index.specs["p/m"].rpm == 50 and index.configured["p/m"].rpm == 5
    assert index.group("g").deployments[0].rpm == 50
    assert index.group("m").deployments[0].rpm == 50
    assert index.group("n").deployments[0].tpm == 1000


def test_the_overrides_file_round_trips_and_drops_cleared_fields(tmp_path: Path) -> None:
    path = tmp_path / "state" / "overrides.json"
    store = Overrides(path)
    store.update("p/m", rpm=10, breaker="open")
    store.update("p/n", tpm=5)
    store.update("p/n", tpm=None)
    again = Overrides(path)
    assert again.deployments == {"p/m": {"rpm": 10, "breaker": "open"}}
    assert again.limits() == {"p/m": {"rpm": 10}} and again.pinned_open() == ["p/m"]
    assert json.loads(path.read_text())["deployments"]["p/m"]["rpm"] == 10


@pytest.mark.parametrize("text", ["not json", '{"deployments": [1]}', "{}"])
def test_a_damaged_overrides_file_reads_as_empty_and_says_why(tmp_path: Path, text: str) -> None:
    path = tmp_path / "overrides.json"
    path.write_text(text)
    store = Overrides(path)
    assert store.deployments == {} and store.problem and str(path) in store.problem


def test_an_update_keeps_what_another_process_wrote_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    mine, theirs = Overrides(path), Overrides(path)
    theirs.update("p/n", rpm=3)
    mine.update("p/m", tpm=7)
    assert Overrides(path).deployments == {"p/n": {"rpm": 3}, "p/m": {"tpm": 7}}
