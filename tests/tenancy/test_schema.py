"""The sans-I/O parts the stores share: migration lists, rows, change notices, store choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmux.config.features import AuthConfig
from modelmux.config.problems import ConfigError
from modelmux.tenancy import changes, rows
from modelmux.tenancy.migrations import TENANCY, Component, Migration, validate, with_tenancy
from modelmux.tenancy.open import describe_store, open_store, sqlite_path
from modelmux.tenancy.records import Key, Team, User
from modelmux.tenancy.sqlite import SqliteStore

M1 = Migration(1, sqlite=("x",), postgres=("x",))
M2 = Migration(2, sqlite=("y",), postgres=("y",))


def test_migrations_must_be_numbered_in_order_and_components_unique() -> None:
    validate([TENANCY, Component("spend", (M1, M2))])
    with pytest.raises(ValueError, match="migration 2 where 1"):
        validate([Component("spend", (M2,))])
    with pytest.raises(ValueError, match="listed twice"):
        validate([Component("a", (M1,)), Component("a", (M1,))])
    assert with_tenancy([TENANCY, Component("spend", (M1,))])[0] is TENANCY
    assert Component("spend", (M1, M2)).pending(1) == [M2]
    assert Component("none", ()).latest == 0


@pytest.mark.parametrize("record", [
    Team(id="t", name="n", models=("a", "b*"), metadata={"x": [1, {"y": None}]}, rpm=3),
    User(id="u", name="n", team_id="t", role="viewer", max_budget_usd=2.5),
    Key(id="k", prefix="sk-mm-abcdef", hash="h", models=None, expires_at=10.0),
], ids=["team", "user", "key"])
def test_a_record_survives_its_row(record: Team | User | Key) -> None:
    kind = type(record).__name__.lower()
    row = rows.to_row(record)
    assert len(row) == len(rows.columns(kind))
    assert rows.from_row(kind, row) == record


def test_changes_are_checked_whole() -> None:
    team = Team(id="t", name="n")
    assert rows.changed(team, {"models": ["a"], "rpm": 4}) == Team(id="t", name="n",
                                                                   models=("a",), rpm=4)
    with pytest.raises(ValueError, match="cannot be changed"):
        rows.changed(team, {"id": "t2"})
    with pytest.raises(ValueError, match="budget_period"):
        rows.changed(team, {"budget_period": "fortnightly"})
    with pytest.raises(ValueError):
        rows.changed(team, {"tpm": "lots"})
    assert rows.created(team, now=5.0).created_at == 5.0
    assert rows.created(Team(id="t", name="n", created_at=1.0)).created_at == 1.0


def test_change_notices_parse_strictly() -> None:
    assert changes.parse(changes.payload("key", "key_1")) == ("key", "key_1")
    assert changes.parse("key:id:with:colons") == ("key", "id:with:colons")
    assert changes.parse("*:") == changes.EVERYTHING
    for junk in ("", "key", "key:", "spend:1", "*:x", ":id"):
        assert changes.parse(junk) is None


def test_the_store_auth_names(tmp_path: Path) -> None:
    default = open_store(AuthConfig(), tmp_path)
    assert isinstance(default, SqliteStore) and default.path == tmp_path / "modelmux.db"
    assert sqlite_path(AuthConfig(sqlite_path="/srv/mm.db"), tmp_path) == Path("/srv/mm.db")
    assert str(sqlite_path(AuthConfig(sqlite_path="~/mm.db"), tmp_path)).endswith("/mm.db")
    with pytest.raises(ConfigError, match="postgres_dsn"):
        open_store(AuthConfig(store="postgres"), tmp_path)
    assert describe_store(AuthConfig(store="postgres", postgres_dsn="postgresql://u:pw@h:5/d"),
                          tmp_path) == "postgres postgresql://u:<redacted>@h:5/d"
