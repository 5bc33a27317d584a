"""``[auth.jwt]`` is checked when the config loads, with file:line: key.path messages: one key
source, an http(s) URL, public-key algorithms only, and the jwt extra installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from modelmux.config.load import load_config
from modelmux.config.problems import ConfigError

BASE = ('[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n\n'
        '[auth]\nmode = "keys"\nmaster_key = "sk-master-0123456789"\n\n[auth.jwt]\n'
        'issuer = "https://login.example.test/"\naudience = "modelmux"\n')


def problems(tmp_path: Path, jwt: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(BASE + jwt)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


@pytest.mark.parametrize(("jwt", "expected"), [
    ("", "auth.jwt: needs exactly one of jwks_url and jwks_file"),
    ('jwks_url = "https://a/j"\njwks_file = "/j.json"\n',
     "auth.jwt: needs exactly one of jwks_url and jwks_file"),
    ('jwks_url = "ftp://a/j"\n', "auth.jwt.jwks_url: expected an http(s) URL, got 'ftp://a/j'"),
    ('jwks_file = "/j.json"\nalgorithms = ["RS256", "HS256"]\n',
     "auth.jwt.algorithms: algorithms may list only ES256"),
    ('jwks_file = "/j.json"\nalgorithms = ["none"]\n', "got none"),
    ('jwks_file = "/j.json"\nalgorithms = []\n', "public-key signatures); got none"),
    ('jwks_file = "/j.json"\nleeway_seconds = 900\n', "auth.jwt.leeway_seconds: expected"),
])
def test_bad_jwt_tables_are_config_errors(tmp_path: Path, jwt: str, expected: str) -> None:
    assert expected in problems(tmp_path, jwt)


def test_a_good_table_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE + 'jwks_file = "/etc/jwks.json"\nrole_claim = "roles"\n')
    jwt = load_config(path).config.auth.jwt
    assert jwt is not None and jwt.role_claim == "roles" and jwt.algorithms == ["RS256", "ES256"]


def test_jwt_without_its_package_is_a_config_error(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "jwt" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert "auth.jwt: JWTs need the jwt extra" in problems(tmp_path, 'jwks_file = "/j.json"\n')
