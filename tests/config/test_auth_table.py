"""A 2.x ``[auth]`` table (tenancy) is read as such; 1.x's (service account) still maps."""

from __future__ import annotations

from modelmux.config.migrate import is_legacy, legacy_auth


def test_two_x_auth_is_not_legacy() -> None:
    assert not legacy_auth({"mode": "keys", "master_key": "x"})
    assert not is_legacy({"auth": {"mode": "keys"}})
    assert not legacy_auth({})


def test_one_x_auth_is_legacy() -> None:
    assert legacy_auth({"service_account_file": "/sa.json"})
    assert legacy_auth({"strategy": "x"})  # nothing 2.x knows: 1.x ignored unknown keys
    assert is_legacy({"auth": {"service_account_json": "{}"}})
