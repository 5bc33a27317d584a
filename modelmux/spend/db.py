"""The spend log's queries on a SQLite connection (run on the store's own thread).

``insert`` writes a batch in one transaction, ``prune`` applies the retention, ``usage``
groups the rows for reports and ``/admin/usage``, ``spent_since`` seeds budget counters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from modelmux.spend.account import SpendRow
from modelmux.spend.schema import COLUMNS

__all__ = ["GROUPS", "claim", "insert", "prune", "spent_since", "usage"]

GROUPS = {"key": "key", "team": "team", "user": "user_id", "model": "model",
          "provider": "provider", "day": "date(time, 'unixepoch')"}
"""``group_by`` values and the column (or expression) each groups on."""

_INSERT = (f"INSERT INTO spend_log ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")


def _values(row: SpendRow) -> tuple[Any, ...]:
    return (row.time, row.request_id, row.key, row.user, row.team, row.model, row.provider,
            row.input_tokens, row.output_tokens, row.cached_tokens, row.cache_write_tokens,
            row.cost_usd, row.latency_ms, row.status, int(row.cache_hit), row.saved_usd)


def insert(conn: sqlite3.Connection, rows: Sequence[SpendRow]) -> int:
    """Write ``rows`` in one transaction; returns how many."""
    conn.execute("BEGIN")
    try:
        conn.executemany(_INSERT, [_values(row) for row in rows])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(rows)


def prune(conn: sqlite3.Connection, before: float) -> int:
    """Delete the rows older than ``before`` (Unix seconds); returns how many went."""
    return conn.execute("DELETE FROM spend_log WHERE time < ?", (before,)).rowcount


def usage(conn: sqlite3.Connection, group_by: str, since: float, until: float,
          team: str | None = None) -> list[dict[str, Any]]:
    """Totals per group for ``since <= time < until`` (of one ``team`` only, if given), most
    expensive first.

    Raises:
        KeyError: ``group_by`` is not one of ``GROUPS``.
    """
    column = GROUPS[group_by]
    where, args = "time >= ? AND time < ?", [since, until]
    if team is not None:
        where += " AND team = ?"
        args.append(team)
    cursor = conn.execute(
        f"SELECT {column} AS g, COUNT(*), SUM(input_tokens), SUM(output_tokens), "
        f"SUM(cost_usd), SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) FROM spend_log "
        f"WHERE {where} "
        f"GROUP BY g ORDER BY SUM(COALESCE(cost_usd, 0)) DESC, g", args)
    return [{"group": group, "requests": count, "input_tokens": tokens_in or 0,
             "output_tokens": tokens_out or 0, "cost_usd": round(cost or 0.0, 10),
             "unpriced_requests": unpriced or 0}
            for group, count, tokens_in, tokens_out, cost, unpriced in cursor.fetchall()]


def spent_since(conn: sqlite3.Connection, since: float) -> dict[tuple[str, str], float]:
    """USD spent since ``since`` per (scope, id): ("global", ""), ("key", id), ("user", id),
    ("team", id); what budget counters start from when there is no shared state."""
    out: dict[tuple[str, str], float] = {}
    total = conn.execute("SELECT SUM(cost_usd) FROM spend_log WHERE time >= ?",
                         (since,)).fetchone()[0]
    out["global", ""] = total or 0.0
    for scope, column in (("key", "key"), ("user", "user_id"), ("team", "team")):
        for ident, spent in conn.execute(
                f"SELECT {column}, SUM(cost_usd) FROM spend_log WHERE time >= ? AND "
                f"{column} IS NOT NULL GROUP BY {column}", (since,)):
            out[scope, ident] = spent or 0.0
    return out


def claim(conn: sqlite3.Connection, name: str, at: float) -> bool:
    """Record that notice ``name`` (a report or alert of one period) is being sent; False
    when some instance claimed it already."""
    cursor = conn.execute("INSERT INTO spend_notices (name, sent_at) VALUES (?, ?) "
                          "ON CONFLICT (name) DO NOTHING", (name, at))
    return cursor.rowcount == 1
