"""Versioned schema migrations, kept per component in one ``schema_version`` table.

A ``Component`` is a name and its numbered ``Migration``s (1, 2, 3, ... in order), each with
the statements for SQLite and for PostgreSQL. ``schema_version(component, version)`` records
how far each component's tables are. A part of the product with tables of its own (spend, ...)
declares its own ``Component`` beside its code and passes it to the store it shares::

    SPEND = Component("spend", (Migration(1, sqlite=("CREATE TABLE ...",), postgres=(...)),))
    store = open_store(auth, state_dir, components=(SPEND,))   # tenancy's own come first

``open()`` (and ``modelmux db upgrade``) applies every pending migration of each component in
one transaction per component; running it again changes nothing. A migration, once released,
is never edited: a change is a new version. This module holds no I/O; the stores run the SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class Migration(NamedTuple):
    """One schema step: the statements that take a component from ``version - 1`` to ``version``."""

    version: int
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


class Component(NamedTuple):
    """A named set of tables and the migrations that build them."""

    name: str
    migrations: tuple[Migration, ...]

    @property
    def latest(self) -> int:
        return self.migrations[-1].version if self.migrations else 0

    def pending(self, current: int) -> list[Migration]:
        """The migrations a database at version ``current`` still needs, in order."""
        return [m for m in self.migrations if m.version > current]


class Applied(NamedTuple):
    """What one upgrade did to a component: ``before`` and ``after`` are schema versions."""

    component: str
    before: int
    after: int


def validate(components: Sequence[Component]) -> None:
    """Check that names are unique and versions run 1, 2, 3, ... without gaps.

    Raises:
        ValueError: a duplicate component or a misnumbered migration.
    """
    seen: set[str] = set()
    for component in components:
        if component.name in seen:
            raise ValueError(f"schema component {component.name!r} is listed twice")
        seen.add(component.name)
        for expected, migration in enumerate(component.migrations, start=1):
            if migration.version != expected:
                raise ValueError(f"schema component {component.name!r}: migration "
                                 f"{migration.version} where {expected} was expected")


def with_tenancy(extra: Iterable[Component]) -> tuple[Component, ...]:
    """TENANCY followed by ``extra`` (without a second TENANCY), validated."""
    components = (TENANCY, *(c for c in extra if c.name != TENANCY.name))
    validate(components)
    return components


def _limits(json: str, real: str, integer: str) -> str:
    """The columns every Limited record has, in the dialect's types."""
    return (f"models {json}, rpm {integer}, tpm {integer}, max_parallel {integer}, "
            f"max_budget_usd {real}, budget_period TEXT NOT NULL, metadata {json} NOT NULL, "
            f"created_at {real} NOT NULL")


def _tenancy_v1(json: str, real: str, integer: str) -> tuple[str, ...]:
    limits = _limits(json, real, integer)
    return (
        f"CREATE TABLE tenancy_teams (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, {limits})",
        (f"CREATE TABLE tenancy_users (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
         f"team_id TEXT, role TEXT NOT NULL, {limits})"),
        (f"CREATE TABLE tenancy_keys (id TEXT PRIMARY KEY, prefix TEXT NOT NULL, "
         f"hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, team_id TEXT, user_id TEXT, "
         f"role TEXT NOT NULL, expires_at {real}, revoked_at {real}, last_used_at {real}, {limits})"),
        "CREATE INDEX tenancy_users_team ON tenancy_users (team_id)",
        "CREATE INDEX tenancy_keys_team ON tenancy_keys (team_id)",
        "CREATE INDEX tenancy_keys_user ON tenancy_keys (user_id)",
    )


SQLITE_CHANGES = (
    ("CREATE TABLE tenancy_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
     "kind TEXT NOT NULL, id TEXT NOT NULL, at REAL NOT NULL)"),
)
"""SQLite's change log: how processes sharing one file learn of each other's changes."""

TENANCY = Component("tenancy", (
    Migration(1, sqlite=_tenancy_v1("TEXT", "REAL", "INTEGER") + SQLITE_CHANGES,
              postgres=_tenancy_v1("JSONB", "DOUBLE PRECISION", "BIGINT")),
))
"""Teams, users and keys (``tenancy_teams``, ``tenancy_users``, ``tenancy_keys``); on SQLite
also ``tenancy_changes`` (PostgreSQL uses NOTIFY instead)."""
