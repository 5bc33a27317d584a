"""The spend log's queries on PostgreSQL (an asyncpg connection from the shared store's pool):
the same functions as ``spend.db``, found through ``TWINS``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from modelmux.spend import db
from modelmux.spend.account import SpendRow
from modelmux.spend.schema import COLUMNS

__all__ = ["TWINS"]

GROUPS = {**db.GROUPS, "day": "to_char(to_timestamp(time) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"}

_INSERT = (f"INSERT INTO spend_log ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join(f'${n}' for n in range(1, len(COLUMNS) + 1))})")


def _values(row: SpendRow) -> tuple[Any, ...]:
    return (row.time, row.request_id, row.key, row.user, row.team, row.model, row.provider,
            row.input_tokens, row.output_tokens, row.cached_tokens, row.cache_write_tokens,
            row.cost_usd, row.latency_ms, row.status, row.cache_hit, row.saved_usd)


async def insert(conn: Any, rows: Sequence[SpendRow]) -> int:
    async with conn.transaction():
        await conn.executemany(_INSERT, [_values(row) for row in rows])
    return len(rows)


async def prune(conn: Any, before: float) -> int:
    status = await conn.execute("DELETE FROM spend_log WHERE time < $1", before)
    return int(status.rsplit(" ", 1)[-1])


async def usage(conn: Any, group_by: str, since: float, until: float,
                team: str | None = None) -> list[dict[str, Any]]:
    column = GROUPS[group_by]
    where, args = "time >= $1 AND time < $2", [since, until]
    if team is not None:
        where += " AND team = $3"
        args.append(team)
    records = await conn.fetch(
        f"SELECT {column} AS g, COUNT(*), SUM(input_tokens), SUM(output_tokens), "
        f"SUM(cost_usd), SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) FROM spend_log "
        f"WHERE {where} GROUP BY g ORDER BY SUM(COALESCE(cost_usd, 0)) DESC, g", *args)
    return [{"group": r[0], "requests": int(r[1]), "input_tokens": int(r[2] or 0),
             "output_tokens": int(r[3] or 0), "cost_usd": round(float(r[4] or 0.0), 10),
             "unpriced_requests": int(r[5] or 0)} for r in records]


async def spent_since(conn: Any, since: float) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    total = await conn.fetchval("SELECT SUM(cost_usd) FROM spend_log WHERE time >= $1", since)
    out["global", ""] = float(total or 0.0)
    for scope, column in (("key", "key"), ("user", "user_id"), ("team", "team")):
        for ident, spent in await conn.fetch(
                f"SELECT {column}, SUM(cost_usd) FROM spend_log WHERE time >= $1 AND "
                f"{column} IS NOT NULL GROUP BY {column}", since):
            out[scope, ident] = float(spent or 0.0)
    return out


async def claim(conn: Any, name: str, at: float) -> bool:
    status = await conn.execute("INSERT INTO spend_notices (name, sent_at) VALUES ($1, $2) "
                                "ON CONFLICT (name) DO NOTHING", name, at)
    return bool(status.endswith(" 1"))


TWINS: dict[Callable[..., Any], Callable[..., Awaitable[Any]]] = {
    db.insert: insert, db.prune: prune, db.usage: usage, db.spent_since: spent_since,
    db.claim: claim}
"""``spend.db`` function → its PostgreSQL twin."""
