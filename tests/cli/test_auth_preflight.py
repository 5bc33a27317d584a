"""Serving without authentication is refused on any address other machines may reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmux.cli.preflight import auth_problems, is_loopback
from modelmux.config.features import AuthConfig
from modelmux.config.schema import Config, ServerConfig
from tests.cli.helpers import run, write


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True),
                                           ("[::1]", True), ("localhost", True),
                                           ("0.0.0.0", False), ("::", False), ("", False),
                                           ("10.0.0.5", False), ("gateway.internal", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def config(host: str, **auth: object) -> Config:
    return Config(server=ServerConfig(host=host), auth=AuthConfig(**auth))  # type: ignore[arg-type]


def test_public_address_without_auth_is_a_problem_naming_the_way_out() -> None:
    problems = auth_problems(config("0.0.0.0"), {})
    assert len(problems) == 1 and not problems[0].warning
    assert "allow_unauthenticated" in problems[0].message
    assert problems[0].path == ("auth", "mode")


@pytest.mark.parametrize("cfg", [config("127.0.0.1"), config("0.0.0.0", mode="keys"),
                                 config("0.0.0.0", allow_unauthenticated=True)])
def test_loopback_keys_or_an_explicit_allowance_pass(cfg: Config) -> None:
    assert auth_problems(cfg, {}) == []


def test_an_empty_master_key_is_a_problem_on_any_address() -> None:
    for host in ("127.0.0.1", "0.0.0.0"):
        (problem,) = auth_problems(config(host, mode="keys", master_key=""), {})
        assert problem.path == ("auth", "master_key") and not problem.warning
        assert "MODELMUX_MASTER_KEY" in problem.message and "empty" in problem.message
    assert auth_problems(config("0.0.0.0", mode="keys", master_key=None), {}) == []


def test_an_empty_master_key_variable_stops_serve(tmp_path: Path) -> None:
    config_file = write(tmp_path / "config.toml", '[server]\nhost = "127.0.0.1"\nport = 0\n'
                        '[auth]\nmode = "keys"\nmaster_key = "${MODELMUX_MASTER_KEY}"\n'
                        '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n')
    done = run(tmp_path, "serve", "--config", str(config_file), MODELMUX_MASTER_KEY="")
    assert done.returncode == 2
    assert "auth.master_key: is empty" in done.stderr and "MODELMUX_MASTER_KEY" in done.stderr
    assert "listening on" not in done.stderr
