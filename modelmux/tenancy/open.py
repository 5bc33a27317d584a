"""Pick and build the tenancy store ``[auth]`` names; the caller awaits its ``open()``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from modelmux.config.features import AuthConfig
from modelmux.config.paths import expand_user
from modelmux.config.problems import ConfigError
from modelmux.config.state import hide_password
from modelmux.tenancy.migrations import Component
from modelmux.tenancy.store import TenancyStore

DB_NAME = "modelmux.db"


def sqlite_path(auth: AuthConfig, state_dir: str | os.PathLike[str]) -> Path:
    """``[auth] sqlite_path`` (``~`` expanded), else ``modelmux.db`` in the state directory."""
    if auth.sqlite_path:
        return Path(expand_user(auth.sqlite_path))
    return Path(state_dir) / DB_NAME


def describe_store(auth: AuthConfig, state_dir: str | os.PathLike[str]) -> str:
    """Which store ``auth`` names and where, without secrets (for CLI output and logs).

    Raises:
        ConfigError: postgres without ``postgres_dsn``.
    """
    if auth.store == "postgres":
        return f"postgres {hide_password(_dsn(auth))}"
    return f"sqlite {sqlite_path(auth, state_dir)}"


def _dsn(auth: AuthConfig) -> str:
    if not auth.postgres_dsn:
        raise ConfigError('[auth] store = "postgres" needs [auth] postgres_dsn')
    return auth.postgres_dsn


def open_store(auth: AuthConfig, state_dir: str | os.PathLike[str], *,
               components: Iterable[Component] = ()) -> TenancyStore:
    """The store ``auth.store`` names, not yet open; ``components`` are extra schemas
    (``tenancy.migrations``) it applies beside tenancy's.

    Raises:
        ConfigError: postgres without ``postgres_dsn``, or without the asyncpg package.
    """
    store: TenancyStore
    if auth.store == "postgres":
        from modelmux.tenancy.postgres import PostgresStore

        store = PostgresStore(_dsn(auth), components=components)
    else:
        from modelmux.tenancy.sqlite import SqliteStore

        store = SqliteStore(sqlite_path(auth, state_dir), components=components)
    return store
