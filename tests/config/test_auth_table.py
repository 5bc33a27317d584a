"""``[auth]`` is 2.x's "who may call" table when it has any of its keys; 1.x's service
account ``[auth]`` still loads through the compatibility mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmux.config.load import load_config
from modelmux.config.migrate import is_legacy


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path, environ={"HOME": str(tmp_path)}, system_file=tmp_path / "none")


def test_2x_auth_keys_are_settings_not_1x_leftovers(tmp_path: Path) -> None:
    loaded = load(tmp_path, '[auth]\nstore = "postgres"\npostgres_dsn = "postgresql://h/db"\n'
                            '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n')
    auth = loaded.config.auth  # type: ignore[attr-defined]
    assert (auth.store, auth.postgres_dsn) == ("postgres", "postgresql://h/db")
    assert not any("1.x" in p.message for p in loaded.warnings)  # type: ignore[attr-defined]


def test_1x_service_account_auth_is_still_1x() -> None:
    assert is_legacy({"auth": {"service_account_file": "/etc/sa.json"}})
    assert is_legacy({"auth": {}})
    assert not is_legacy({"auth": {"mode": "keys", "master_key": "x"}})
    assert is_legacy({"auth": {"mode": "keys"}, "vertex": {"project": "p"}})


def test_postgres_store_needs_a_dsn(tmp_path: Path) -> None:
    from modelmux.config.problems import ConfigError

    with pytest.raises(ConfigError, match="postgres_dsn"):
        load(tmp_path, '[auth]\nstore = "postgres"\n')
