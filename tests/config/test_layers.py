"""Layering: flags > MODELMUX_* env > user file > system file > 1.x plain env > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmux.config.layers import Layer, merge
from modelmux.config.problems import ConfigError, ValueOrigin
from modelmux.config.providers import MockProviderConfig
from tests.config.helpers import load, write

SYSTEM = """
[server]
host = "0.0.0.0"
port = 1111
max_connections = 5

[server.cors]
allow_origins = ["https://system.example"]
max_age = 60

[[provider]]
name = "sys"
type = "mock"
models = ["sys-model"]
"""

USER = """
[server]
port = 2222

[server.cors]
max_age = 120

[[provider]]
name = "user"
type = "mock"
models = ["user-model"]
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write(tmp_path / "etc/config.toml", SYSTEM)
    write(tmp_path / ".config/modelmux/config.toml", USER)
    return tmp_path


def test_user_file_over_system_file_key_by_key(home: Path) -> None:
    loaded = load(home)
    server = loaded.config.server
    assert server.host == "0.0.0.0" and server.port == 2222 and server.max_connections == 5
    assert server.cors.allow_origins == ["https://system.example"] and server.cors.max_age == 120
    assert loaded.files == [home / "etc/config.toml", home / ".config/modelmux/config.toml"]


def test_arrays_of_tables_from_a_higher_layer_replace_the_lower_ones(home: Path) -> None:
    providers = load(home).config.provider
    assert [p.name for p in providers] == ["user"]


def test_environment_over_files_and_flags_over_everything(home: Path) -> None:
    loaded = load(home, environ={"MODELMUX_SERVER_PORT": "3333", "MODELMUX_SERVER_HOST": "::1"},
                  overrides=[(("server", "port"), 4444, "--port")])
    assert loaded.config.server.port == 4444 and loaded.config.server.host == "::1"
    assert loaded.origins[("server", "port")] == ValueOrigin("command line", name="--port")
    assert loaded.origins[("server", "host")].name == "MODELMUX_SERVER_HOST"


def test_plain_1x_variables_sit_below_the_files(home: Path) -> None:
    loaded = load(home, environ={"PORT": "5555", "LOG_LEVEL": "debug"})
    assert loaded.config.server.port == 2222  # a file sets it: the 1.x variable is ignored
    assert loaded.config.logging.level == "debug"  # nothing sets it: the 1.x variable applies
    rendered = [w.render() for w in loaded.warnings]
    assert any("PORT: ignored" in w and "config.toml" in w for w in rendered)
    assert any("LOG_LEVEL: a ModelMux 1.x variable (deprecated)" in w for w in rendered)


def test_config_flag_replaces_both_file_layers(home: Path, tmp_path: Path) -> None:
    explicit = write(tmp_path / "explicit.toml", '[server]\nport = 7777\n'
                     '[[provider]]\nname = "x"\ntype = "mock"\nmodels = ["x"]\n')
    loaded = load(home, explicit)
    assert loaded.config.server.port == 7777 and loaded.config.server.host == "127.0.0.1"
    assert loaded.files == [explicit]


def test_origins_carry_file_and_line(home: Path) -> None:
    origin = load(home).origins[("server", "cors", "max_age")]
    assert origin.file == home / ".config/modelmux/config.toml" and origin.line == 6


def test_no_file_anywhere_is_the_mock_default(tmp_path: Path) -> None:
    loaded = load(tmp_path)
    assert loaded.defaulted and loaded.files == []
    assert loaded.config.provider == [MockProviderConfig(name="mock", models=["mock"])]


def test_a_file_without_providers_is_not_defaulted(tmp_path: Path) -> None:
    write(tmp_path / ".config/modelmux/config.toml", "[server]\nport = 1\n")
    loaded = load(tmp_path)
    assert not loaded.defaulted and loaded.config.provider == []
    assert any("no [[provider]]" in w.message for w in loaded.warnings)


def test_missing_config_flag_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path, tmp_path / "nope.toml")


def test_merge_replaces_atomic_tables_whole() -> None:
    low = Layer("low", {"_legacy": {"vertex": {"project": "a", "region": "r"}}, "t": {"a": 1}})
    high = Layer("high", {"_legacy": {"vertex": {"project": "b"}}, "t": {"b": 2}})
    data, _ = merge([low, high], atomic=[("_legacy", "vertex")])
    assert data == {"_legacy": {"vertex": {"project": "b"}}, "t": {"a": 1, "b": 2}}
