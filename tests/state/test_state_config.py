"""``[state]`` is validated with file:line: key.path messages, like every table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from modelmux.config.load import load_config
from modelmux.config.problems import ConfigError
from modelmux.config.state import StateConfig

BASE = '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n\n[state]\n'


def problems(tmp_path: Path, state: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(BASE + state)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


@pytest.mark.parametrize(("state", "expected"), [
    ('backend = "memcached"\n', "config.toml:7: state.backend: expected one of memory, redis, got 'memcached'"),
    ('url = "http://127.0.0.1:6379"\n', "state: url must start with redis://, rediss:// or"),
    ('url = "redis://:6379/0"\n', "state: url needs a host"),
    ('url = "redis://h:99999/0"\n', "state: url has an invalid port"),
    ("timeout_ms = 0\n", "state.timeout_ms: expected `float` > 0.0"),
    ("lease_ms = 10\n", "state.lease_ms: expected `int` >= 100"),
    ('prefix = "x"\n', "state.prefix: unknown field `prefix` (expected one of: backend, url"),
])
def test_bad_state_tables_are_config_errors(tmp_path: Path, state: str, expected: str) -> None:
    assert expected in problems(tmp_path, state)


def test_redis_without_its_package_is_a_config_error(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name == "redis":
            return None
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    text = problems(tmp_path, 'backend = "redis"\n')
    assert "config.toml:7: state.backend: backend = \"redis\" needs the redis extra" in text


def test_defaults_and_credentials_kept_out_of_logs() -> None:
    config = StateConfig()
    assert (config.backend, config.url, config.key_prefix) == (
        "memory", "redis://127.0.0.1:6379/0", "modelmux:")
    secret = StateConfig(backend="redis", url="rediss://user:hunter2@cache.internal:6380/2")
    assert secret.where() == "rediss://cache.internal:6380/2"


def test_environment_variables_and_config_show_hides_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from modelmux.cli.main import main

    path = tmp_path / "config.toml"
    path.write_text(BASE)
    monkeypatch.setenv("MODELMUX_STATE_BACKEND", "redis")
    monkeypatch.setenv("MODELMUX_STATE_URL", "redis://bob:hunter2@127.0.0.1:7000/1")
    assert load_config(path).config.state.url == "redis://bob:hunter2@127.0.0.1:7000/1"
    assert main(["config", "show", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'url = "redis://bob:<redacted>@127.0.0.1:7000/1"' in out and "hunter2" not in out
