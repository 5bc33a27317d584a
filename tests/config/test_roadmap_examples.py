"""The roadmap's configuration examples load as the documented equivalents of today's keys.

``tests/config/roadmap/*.toml`` hold the examples verbatim (two files: TOML cannot hold both
``fallback = true`` and a ``[routing.fallback]`` table). Each is validated in-process and by the
real ``modelmux config validate``; the shorthand spellings are checked to mean today's keys, and
the ``cost_sensitive`` fact is checked to route a real server by its request header.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import openai
import pytest

from modelmux.config.problems import ConfigError
from modelmux.config.providers import AnthropicConfig, VertexConfig
from modelmux.errors import InvalidRequest
from modelmux.routing.facts import request_facts
from modelmux.rules.compiler import compile_rule
from modelmux.schemas.openai_chat import ChatCompletionRequest
from tests.cli.helpers import run
from tests.config.helpers import load, write
from tests.e2e.proc import serve_config

ROADMAP = Path(__file__).parent / "roadmap"
COST_OPTIMIZED = ROADMAP / "cost_optimized.toml"
FALLBACK_TABLE = ROADMAP / "fallback_table.toml"
VERBATIM = {
    COST_OPTIMIZED: ['model = "claude-3-5-sonnet@20241022"', 'strategy = "cost_optimized"',
                     "fallback = true", 'when = "cost_sensitive == true"'],
    FALLBACK_TABLE: ['model = "claude-3-5-sonnet@20241022"', "[routing.fallback]",
                     "enabled = true", "max_retries = 3", 'backoff = "exponential"',
                     'when = "cost_sensitive == true"'],
}
HEADER = "x-modelmux-cost-sensitive"
PROVIDERS = """\
[[provider]]
name = "v"
type = "vertex"
project = "p"
region = "us-east5"
{models}
"""


@pytest.mark.parametrize("example", sorted(VERBATIM))
def test_each_roadmap_example_validates_with_no_problems(tmp_path: Path, example: Path) -> None:
    text = example.read_text()
    assert all(line in text.splitlines() for line in VERBATIM[example])
    loaded = load(tmp_path, example)
    assert loaded.warnings == []
    out = run(tmp_path, "config", "validate", str(example))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert "claude-3-5-sonnet@20241022 -> vertex/claude-3-5-sonnet@20241022" in out.stdout
    assert "llama-3.1-8b -> local/llama-3.1-8b" in out.stdout


def test_the_examples_mean_todays_keys(tmp_path: Path) -> None:
    config = load(tmp_path, COST_OPTIMIZED).config
    vertex, local = config.provider
    assert isinstance(vertex, VertexConfig)
    assert vertex.models == ["claude-3-5-sonnet@20241022"] and local.models == ["llama-3.1-8b"]
    assert config.routing.strategy == "cost"
    assert config.routing.fallback.enabled is True
    rule = config.routing.rules[0]
    assert (rule.when, rule.group) == ("cost_sensitive == true", "llama-3.1-8b")
    fallback = load(tmp_path, FALLBACK_TABLE).config.routing.fallback
    assert (fallback.enabled, fallback.max_retries, fallback.backoff) == (True, 3, "exponential")


@pytest.mark.parametrize("routing", ["[routing]\nfallback = false\n",
                                     "[routing.fallback]\nenabled = false\n"])
def test_either_spelling_turns_fallback_off(tmp_path: Path, routing: str) -> None:
    path = write(tmp_path / "c.toml", PROVIDERS.format(models='model = "m"') + routing)
    assert load(tmp_path, path).config.routing.fallback.enabled is False


def test_fallback_false_keeps_the_lower_layers_other_fallback_keys(tmp_path: Path) -> None:
    system = write(tmp_path / "etc/config.toml", "[routing.fallback]\nmax_retries = 7\n")
    write(tmp_path / ".config/modelmux/config.toml",
          PROVIDERS.format(models='model = "m"') + "[routing]\nfallback = false\n")
    fallback = load(tmp_path, system_file=system).config.routing.fallback
    assert (fallback.enabled, fallback.max_retries) == (False, 7)


def test_a_group_strategy_may_be_cost_optimized_too(tmp_path: Path) -> None:
    group = ('[[routing.group]]\nname = "g"\nstrategy = "cost_optimized"\n'
             'deployments = [{ provider = "v", model = "m" }]\n')
    path = write(tmp_path / "c.toml", PROVIDERS.format(models='model = "m"') + group)
    assert load(tmp_path, path).config.routing.group[0].strategy == "cost"


def test_model_works_for_every_provider_type(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[[provider]]\nname = "a"\ntype = "anthropic"\n'
                 'model = "claude-sonnet-4"\napi_key = "k"\n')
    (provider,) = load(tmp_path, path).config.provider
    assert isinstance(provider, AnthropicConfig) and provider.models == ["claude-sonnet-4"]


@pytest.mark.parametrize(("models", "expected"), [
    ('model = "m"\nmodels = ["n"]',
     "c.toml:6: provider[0].model: give either `model` (one model) or `models` (a list), not both"),
    ("model = 3", "c.toml:6: provider[0].models[0]: expected `str`, got `int`"),
    ('model = ["m"]', "c.toml:6: provider[0].models[0]: expected `str`, got `array`"),
])
def test_a_bad_model_key_is_a_clear_problem(tmp_path: Path, models: str, expected: str) -> None:
    path = write(tmp_path / "c.toml", PROVIDERS.format(models=models))
    with pytest.raises(ConfigError) as info:
        load(tmp_path, path)
    assert expected in str(info.value)
    assert "missing required field" not in str(info.value)


@pytest.mark.parametrize(("routing", "expected"), [
    ('[routing.fallback]\nbackoff = "linear"\n',
     "routing.fallback.backoff: expected one of exponential, constant, got 'linear'"),
    ('[routing]\nfallback = "yes"\n',
     "routing.fallback: expected true, false or a [routing.fallback] table, got 'yes'"),
])
def test_unknown_values_list_the_allowed_ones(tmp_path: Path, routing: str, expected: str) -> None:
    path = write(tmp_path / "c.toml", PROVIDERS.format(models='model = "m"') + routing)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, path)
    assert expected in str(info.value)


@pytest.mark.parametrize("example", sorted(VERBATIM))
def test_show_and_migrate_take_the_examples(tmp_path: Path, example: Path) -> None:
    out = run(tmp_path, "config", "show", "--config", str(example))
    assert out.returncode == 0, out.stderr
    shown = tomllib.loads(out.stdout)
    assert shown["provider"][0]["models"] == ["claude-3-5-sonnet@20241022"]
    assert "model" not in shown["provider"][0]
    assert isinstance(shown["routing"]["fallback"], dict)
    assert f"{example}:9" in out.stdout  # the models line names the `model =` line
    out = run(tmp_path, "config", "migrate", str(example), "--output", "-", "--no-env")
    assert out.returncode == 0, out.stderr
    assert "already in the 2.x format" in out.stdout


def _facts(*headers: tuple[bytes, bytes]) -> dict[str, object]:
    request = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}])
    return request_facts(request, b"{}", headers)


def test_the_cost_sensitive_fact_comes_from_its_header() -> None:
    rule = compile_rule("cost_sensitive == true")
    for value, expected in [(b"true", True), (b"1", True), (b" TRUE ", True), (b"false", False),
                            (b"0", False)]:
        facts = _facts((b"X-ModelMux-Cost-Sensitive", value))
        assert facts["cost_sensitive"] is expected
        assert rule.matches(facts) is expected
    assert "cost_sensitive" not in _facts() and not rule.matches(_facts())
    assert compile_rule("not cost_sensitive").matches(_facts())
    with pytest.raises(InvalidRequest) as info:
        _facts((HEADER.encode(), b"maybe"))
    assert info.value.param == HEADER
    assert "true, false, 1, 0" in info.value.message


SERVED = """\
[[provider]]
name = "premium"
type = "mock"
model = "claude-3-5-sonnet@20241022"
text = "from premium"
chunks = 1

[[provider]]
name = "cheap"
type = "mock"
model = "llama-3.1-8b"
text = "from cheap"
chunks = 1

[routing]
strategy = "cost_optimized"
fallback = true

[[routing.rules]]
when = "cost_sensitive == true"
group = "llama-3.1-8b"
"""


def test_a_server_routes_cost_sensitive_requests_by_the_header(tmp_path: Path) -> None:
    proc = serve_config(tmp_path, SERVED)
    try:
        with openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0,
                           timeout=10) as sdk:
            def ask(**headers: str) -> tuple[str, str]:
                raw = sdk.chat.completions.with_raw_response.create(
                    model="claude-3-5-sonnet@20241022", extra_headers=headers,
                    messages=[{"role": "user", "content": "hi"}])
                return raw.parse().choices[0].message.content or "", raw.headers[
                    "x-modelmux-provider"]

            assert ask() == ("from premium", "premium")
            assert ask(**{HEADER: "true"}) == ("from cheap", "cheap")
            assert ask(**{HEADER: "0"}) == ("from premium", "premium")
            with pytest.raises(openai.BadRequestError) as info:
                ask(**{HEADER: "maybe"})
            error = info.value.body
            assert isinstance(error, dict) and error["param"] == HEADER
            assert ask(**{HEADER: "1"}) == ("from cheap", "cheap")
    finally:
        assert proc.stop() == 0
