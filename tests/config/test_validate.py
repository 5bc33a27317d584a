"""Validation reports every problem at once, each with file, line, key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmux.config.problems import ConfigError
from tests.config.helpers import load, write

BROKEN = """\
[server]
prot = 1
port = 70000

[logging]
level = "loud"

[[provider]]
name = "a"
type = "mock"
models = ["shared"]

[[provider]]
name = "a"
type = "openai_compatible"
models = []
base_url = 5

[[provider]]
type = "bogus"
name = "c"

[[provider]]
name = "v"
type = "vertex"
models = ["shared"]
project = "p"
region = "r"
credentials_file = "x"
credentials_json = "y"

[[provider]]
name = "nomodels"
type = "mock"

[models]
x = "zzz/abc"

[routing]
strategy = "fastest"
"""


@pytest.fixture
def error(tmp_path: Path) -> tuple[Path, ConfigError]:
    config = write(tmp_path / "config.toml", BROKEN)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config)
    return config, info.value


@pytest.mark.parametrize(("line", "path", "reason"), [
    (2, "server.prot", "unknown field `prot` (expected one of: host, port,"),
    (3, "server.port", "expected a port in 0-65535 (0 picks a free port), got 70000"),
    (6, "logging.level", "expected one of trace, debug, info, warn, warning, error, got 'loud'"),
    (14, "provider[1].name", "duplicate provider name `a` (also provider[0])"),
    (16, "provider[1].models", "empty: list the models this provider serves"),
    (17, "provider[1].base_url", "expected `str`, got `int`"),
    (20, "provider[2].type", "`type` must be one of mock, openai_compatible, anthropic, vertex"),
    (23, "provider[3]", "give at most one of credentials_file, credentials_json"),
    (32, "provider[4]", "missing required field `models`"),
    (37, "models.x", "target `zzz/abc` matches no provider"),
    (40, "routing.strategy", "expected one of round_robin, weighted, least_connections,"),
])
def test_every_problem_is_listed_with_its_line(error: tuple[Path, ConfigError], line: int,
                                               path: str, reason: str) -> None:
    config, exc = error
    assert f"{config}:{line}: {path}: {reason}" in str(exc)


def test_the_count_and_the_order(error: tuple[Path, ConfigError]) -> None:
    _, exc = error
    assert str(exc).startswith("11 problems:")
    lines = [p.origin.line for p in exc.problems if p.origin]
    assert lines == sorted(lines)  # type: ignore[type-var]


def test_a_model_listed_twice_is_a_warning_first_wins(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[[provider]]\nname = "a"\ntype = "mock"\nmodels = ["m"]\n'
                   '[[provider]]\nname = "b"\ntype = "mock"\nmodels = ["n", "m"]\n')
    loaded = load(tmp_path, config)
    (warning,) = [w for w in loaded.warnings if "also listed" in w.message]
    assert warning.render().startswith(f"{config}:8: provider[1].models[1]: model `m`")


def test_an_empty_routing_table_is_accepted(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[routing]\n[[provider]]\nname = "a"\ntype = "mock"\n'
                   'models = ["m"]\n')
    assert load(tmp_path, config).config.routing is not None


def test_a_provider_only_reached_through_an_alias_may_list_no_models(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[[provider]]\nname = "a"\ntype = "mock"\nmodels = []\n'
                   '[models]\npublic = "a/private"\n')
    assert load(tmp_path, config).config.model_aliases() == [("public", "a/private", False)]


def test_toml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[server]\nport = 1\nhost = \n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config)
    assert f"{config}:3: not valid TOML: Invalid value" in str(info.value)


def test_problems_in_two_files_are_reported_together(tmp_path: Path) -> None:
    system = write(tmp_path / "etc/config.toml", "[server]\nnope = 1\n")
    user = write(tmp_path / ".config/modelmux/config.toml", "[logging]\nlevel = 3\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert f"{system}:2: server.nope: unknown field" in str(info.value)
    assert f"{user}:2: logging.level: expected `str`, got `int`" in str(info.value)


def test_nested_tables_inside_the_nth_provider(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[[provider]]\nname = "a"\ntype = "mock"\nmodels = ["m"]\n'
                   '[[provider]]\nname = "b"\ntype = "anthropic"\nmodels = ["c"]\napi_key = "k"\n'
                   '[provider.timeouts]\nconnect = -1\nlater = 2\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config)
    assert f"{config}:11: provider[1].timeouts.connect: expected `float` > 0.0" in str(info.value)
    assert f"{config}:12: provider[1].timeouts.later: unknown field `later`" in str(info.value)
