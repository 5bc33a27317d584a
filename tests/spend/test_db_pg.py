"""The spend log on a real PostgreSQL (the tenancy tests' server): the twins answer as the
SQLite queries do for the same rows, and the spend log writes through the PostgreSQL store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelmux.config.features import AuthConfig
from modelmux.spend import db
from modelmux.spend.account import SpendRow
from modelmux.spend.schema import SPEND
from modelmux.tenancy.open import open_store

asyncpg = pytest.importorskip("asyncpg")

from tests.tenancy.postgres_server import PostgresServer, postgres_server  # noqa: E402

__all__ = ["postgres_server"]

ROWS = [SpendRow(time=1000.0 + i, request_id=f"r{i}", key=f"k{i % 2}", user=None,
                 team="t" if i % 3 else None, model="m", provider="p", input_tokens=10 * i,
                 output_tokens=i, cached_tokens=0, cache_write_tokens=0,
                 cost_usd=None if i == 4 else 0.25 * i, latency_ms=1.0, status=200)
        for i in range(6)]


async def _sqlite(path: Path) -> dict[str, Any]:
    store = open_store(AuthConfig(sqlite_path=str(path)), path.parent, components=(SPEND,))
    await store.open()
    try:
        await store.run(db.insert, ROWS)
        return {by: await store.run(db.usage, by, 0.0, 5000.0) for by in db.GROUPS} | {
            "spent": await store.run(db.spent_since, 1002.0),
            "claims": [await store.run(db.claim, "n", 1.0), await store.run(db.claim, "n", 2.0)],
            "pruned": await store.run(db.prune, 1003.0)}
    finally:
        await store.close()


async def _postgres(dsn: str) -> dict[str, Any]:
    from modelmux.spend.db_pg import TWINS

    conn = await asyncpg.connect(dsn)
    try:
        for migration in SPEND.migrations:
            for statement in migration.postgres:
                await conn.execute(statement)
        await TWINS[db.insert](conn, ROWS)
        return {by: await TWINS[db.usage](conn, by, 0.0, 5000.0) for by in db.GROUPS} | {
            "spent": await TWINS[db.spent_since](conn, 1002.0),
            "claims": [await TWINS[db.claim](conn, "n", 1.0),
                       await TWINS[db.claim](conn, "n", 2.0)],
            "pruned": await TWINS[db.prune](conn, 1003.0)}
    finally:
        await conn.close()


def test_postgres_twins_answer_as_sqlite_does(run: Any, tmp_path: Path,
                                              postgres_server: PostgresServer) -> None:
    lite = run(_sqlite(tmp_path / "m.db"))
    pg = run(_postgres(postgres_server.database()))
    assert pg == lite
    assert lite["claims"] == [True, False] and lite["pruned"] == 3


def test_the_spend_log_through_the_postgres_store(run: Any,
                                                  postgres_server: PostgresServer) -> None:
    from modelmux.config.features import AnalyticsConfig
    from modelmux.config.schema import Config
    from modelmux.spend.service import Spend

    config = Config(auth=AuthConfig(store="postgres", postgres_dsn=postgres_server.database()),
                    analytics=AnalyticsConfig(spend_log=True))

    async def main() -> list[dict[str, Any]]:
        spend = Spend(config)
        assert spend.log is not None and spend.store is not None
        for row in ROWS:
            spend.log.add(row)
        await spend.log.flush()
        answer = await spend.store.run(db.usage, "team", 0.0, 5000.0)
        await spend.aclose()
        return list(answer)

    assert run(main()) == [
        {"group": "t", "requests": 4, "input_tokens": 120, "output_tokens": 12,
         "cost_usd": 2.0, "unpriced_requests": 1},
        {"group": None, "requests": 2, "input_tokens": 30, "output_tokens": 3,
         "cost_usd": 0.75, "unpriced_requests": 0}]
