"""The model map in config: ``[[routing.group]]`` deployments, aliases, validation, the index."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmux.config.problems import ConfigError
from modelmux.config.routing import DeploymentConfig, GroupConfig
from modelmux.config.providers import MockProviderConfig
from modelmux.errors import ModelNotFound
from modelmux.providers.mock import MockProvider
from modelmux.routing.models import ModelIndex
from tests.config.helpers import load, write

PROVIDERS = """\
[[provider]]
name = "east"
type = "mock"
models = ["m"]

[[provider]]
name = "west"
type = "mock"
models = []
"""

GOOD = PROVIDERS + """
[routing]
strategy = "weighted"

[[routing.group]]
name = "smart"
aliases = ["clever"]
strategy = "cost"
fallback_group = "m"
tags = ["vision"]
deployments = [
  { provider = "east", model = "big", weight = 3, input_cost_per_1k = 0.5, tags = ["vision"] },
  { provider = "west", model = "big-2", priority = 1, rpm = 60, tpm = 1000, max_concurrent = 2 },
]

[[routing.rules]]
when = 'header("x-region") == "west"'
provider = "west"

[[routing.rules]]
when = "prompt_tokens > 8000"
group = "smart"

[models]
brainy = "clever"
"""


def test_a_good_routing_config_loads(tmp_path: Path) -> None:
    config = load(tmp_path, write(tmp_path / "c.toml", GOOD)).config
    routing = config.routing
    assert routing.strategy == "weighted"
    (group,) = routing.group
    assert (group.name, group.aliases, group.strategy, group.fallback_group) == (
        "smart", ["clever"], "cost", "m")
    assert group.deployments[0] == DeploymentConfig(provider="east", model="big", weight=3,
                                                    input_cost_per_1k=0.5, tags=["vision"])
    assert (group.deployments[1].rpm, group.deployments[1].max_concurrent) == (60, 2)
    assert [r.provider or r.group for r in routing.rules] == ["west", "smart"]
    assert routing.fallback.enabled and routing.fallback.max_retries == 3


BAD = PROVIDERS + """
[[routing.group]]
name = "g"
strategy = "fastest"
fallback_group = "nowhere"
deployments = [
  { provider = "north" },
  { provider = "east", weight = -1 },
  { provider = "east", model = "x", rpm = 5 },
  { provider = "west", model = "g" },
]

[[routing.group]]
name = "h"
aliases = ["g"]
deployments = [{ provider = "east", model = "x", rpm = 6 }]

[[routing.rules]]
when = "model > 3"
group = "g"

[[routing.rules]]
when = "stream and"
provider = "south"

[[routing.rules]]
when = "stream"

[routing.fallback]
backoff = "linear"

[routing.breaker]
cooldown = 900.0

[admin]
token = "x"
"""


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("bad")
    path = write(home / "c.toml", BAD)
    with pytest.raises(ConfigError) as info:
        load(home, path)
    return path, str(info.value)


@pytest.mark.parametrize(("line", "path", "reason"), [
    (13, "routing.group[0].strategy", "expected one of round_robin, weighted, "),
    (14, "routing.group[0].fallback_group", "unknown group `nowhere`"),
    (15, "routing.group[0].deployments[0].provider",
     "unknown provider `north` (providers: east, west)"),
    (15, "routing.group[0].deployments[1].weight", "expected `int` >= 0"),
    (24, "routing.group[1].aliases[0]",
     "`g` is already a group name or alias (at routing.group[0].name)"),
    (25, "routing.group[1].deployments[0]",
     "deployment `east/x` is also at routing.group[0].deployments[2] with other limits"),
    (28, "routing.rules[0].when", "'>' needs numbers, got string and number at column 7"),
    (32, "routing.rules[1].when", "expected a value, got end of rule at column 11"),
    (33, "routing.rules[1].provider", "unknown provider `south`"),
    (35, "routing.rules[2]", "give exactly one of `provider` and `group`"),
    (39, "routing.fallback.backoff", "expected one of exponential, constant, got 'linear'"),
    (41, "routing.breaker", "cooldown must not be above max_cooldown"),
    (45, "admin.token", "unknown field `token` (expected one of: key, viewer_key)"),
])
def test_every_routing_problem_is_reported_with_its_line(bad: tuple[Path, str], line: int,
                                                          path: str, reason: str) -> None:
    config, text = bad
    assert f"{config}:{line}: {path}: {reason}" in text, text


def test_model_specific_needs_a_deployment_with_every_tag(tmp_path: Path) -> None:
    text = PROVIDERS + ('[[routing.group]]\nname = "g"\nstrategy = "model_specific"\n'
                        'tags = ["vision", "tools"]\n'
                        'deployments = [{ provider = "east", tags = ["vision"] }]\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, write(tmp_path / "c.toml", text))
    assert "routing.group[0].tags: strategy model_specific: no deployment carries every tag " \
        "of ['tools', 'vision']" in str(info.value)


def test_a_provider_reached_only_by_a_group_may_list_no_models(tmp_path: Path) -> None:
    text = PROVIDERS + '[[routing.group]]\nname = "g"\ndeployments = [{ provider = "west" }]\n'
    config = load(tmp_path, write(tmp_path / "c.toml", text)).config
    assert config.routing.group[0].deployments[0].model is None


def _index() -> tuple[ModelIndex, MockProvider, MockProvider]:
    east = MockProvider(MockProviderConfig(name="east", models=["m", "shared"]))
    west = MockProvider(MockProviderConfig(name="west", models=["shared"]))
    group = GroupConfig(name="smart", aliases=["clever"], deployments=[
        DeploymentConfig(provider="east", model="big", weight=3),
        DeploymentConfig(provider="west", rpm=5)], fallback_group="m")
    return ModelIndex([east, west], [("brainy", "clever", False), ("*", "m", False)],
                      [group]), east, west


def test_groups_aliases_and_implicit_deployments() -> None:
    index, east, west = _index()
    smart = index.group("smart")
    assert [(d.id, d.weight, d.rpm) for d in smart.deployments] == [
        ("east/big", 3, None), ("west/smart", 1, 5)]
    assert index.group("clever") is smart and index.group("brainy") is smart
    assert [d.id for d in index.group("shared").deployments] == ["east/shared", "west/shared"]
    assert [d.id for d in index.group("west/other").deployments] == ["west/other"]
    assert index.group("west/smart").deployments[0].rpm == 5  # the configured deployment
    assert [d.id for d in index.group("unknown").deployments] == ["east/m"]  # the * alias
    assert index.resolve("smart") == (east, "big")
    assert index.candidates("shared") == [(east, "shared"), (west, "shared")]


def test_public_models_lists_aliases_groups_and_listed_models() -> None:
    index, _, _ = _index()
    assert index.public_models() == [("brainy", "east"), ("smart", "east"), ("clever", "east"),
                                     ("m", "east"), ("shared", "east")]
    with pytest.raises(ModelNotFound):
        ModelIndex([]).group("x")


def test_config_validate_lists_groups_and_show_redacts_the_admin_key(tmp_path: Path) -> None:
    import msgspec

    from modelmux.cli.config_cmd import redact, routing_lines

    text = GOOD + '\n[admin]\nkey = "sesame"\n'
    loaded = load(tmp_path, write(tmp_path / "c.toml", text))
    lines = routing_lines(loaded)
    assert "  smart -> east/big, west/big-2" in lines and "  clever -> east/big, west/big-2" in lines
    assert "  brainy -> clever" in lines and "  m -> east/m" in lines
    shown = redact(msgspec.to_builtins(loaded.config))
    assert shown["admin"]["key"] == "<redacted>"


def test_the_example_in_docs_routing_md_is_a_valid_config(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "routing.md").read_text()
    start = doc.index("```toml\n") + len("```toml\n")
    example = doc[start:doc.index("```", start)]
    providers = ('[[provider]]\nname = "openai-east"\ntype = "mock"\nmodels = ["gpt-4o-mini"]\n'
                 '[[provider]]\nname = "azure-west"\ntype = "mock"\nmodels = []\n')
    config = load(tmp_path, write(tmp_path / "c.toml", providers + example),
                  environ={"MODELMUX_ADMIN_KEY": "k"}).config
    (group,) = config.routing.group
    assert [d.provider for d in group.deployments] == ["openai-east", "azure-west"]
    assert config.routing.hedging.percentile == 95 and config.admin.key == "k"


@pytest.mark.parametrize(("limits", "warned"), [
    ("max_concurrent = 2", ["max_concurrent = 2 is below server.workers = 4"]),
    ("rpm = 3", ["rpm = 3 is below server.workers = 4"]),
    ("max_concurrent = 4, rpm = 60, tpm = 100", []),
])
def test_limits_smaller_than_the_worker_count_are_warned_about(
        tmp_path: Path, limits: str, warned: list[str]) -> None:
    text = ("[server]\nworkers = 4\n" + PROVIDERS + '[[routing.group]]\nname = "g"\n'
            f'deployments = [{{ provider = "west", {limits} }}]\n')
    loaded = load(tmp_path, write(tmp_path / "c.toml", text))
    found = [w.render() for w in loaded.warnings if "server.workers" in w.message]
    assert len(found) == len(warned)
    for want, got in zip(warned, found, strict=True):
        assert "routing.group[0].deployments[0]" in got and want in got, got
