"""Fixtures for the tenancy tests: both stores behind one factory, and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelmux.tenancy.postgres import PostgresStore
from modelmux.tenancy.sqlite import SqliteStore
from tests.tenancy.postgres_server import PostgresServer, postgres_server

__all__ = ["make_store", "postgres_server"]

StoreFactory = Callable[..., Any]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory of unopened stores that all share one fresh database (file or PostgreSQL)."""
    if request.param == "sqlite":
        path = tmp_path / "state" / "modelmux.db"
        return lambda **options: SqliteStore(path, **options)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    dsn = server.database()
    return lambda **options: PostgresStore(dsn, **options)
