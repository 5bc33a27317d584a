"""Serving without authentication is refused on any address other machines may reach."""

from __future__ import annotations

import pytest

from modelmux.cli.preflight import auth_problems, is_loopback
from modelmux.config.features import AuthConfig
from modelmux.config.schema import Config, ServerConfig


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
