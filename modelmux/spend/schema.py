"""The spend log's tables, as the ``spend`` schema component of the shared store.

Registered with ``tenancy.open.open_store(components=(SPEND,))``, so the store's one
``schema_version`` table records how far they are. A released migration is never edited.
"""

from __future__ import annotations

from modelmux.tenancy.migrations import Component, Migration

__all__ = ["COLUMNS", "SPEND"]

COLUMNS = ("time", "request_id", "key", "user_id", "team", "model", "provider", "input_tokens",
           "output_tokens", "cached_tokens", "cache_write_tokens", "cost_usd", "latency_ms",
           "status", "cache_hit", "saved_usd")
"""The ``spend_log`` columns in ``SpendRow`` order (``user`` is a reserved word in SQL)."""


def _v1(real: str, integer: str, boolean: str) -> tuple[str, ...]:
    return (
        (f"CREATE TABLE spend_log (time {real} NOT NULL, request_id TEXT NOT NULL, key TEXT, "
         f"user_id TEXT, team TEXT, model TEXT NOT NULL, provider TEXT NOT NULL, "
         f"input_tokens {integer} NOT NULL, output_tokens {integer} NOT NULL, "
         f"cached_tokens {integer} NOT NULL, cache_write_tokens {integer} NOT NULL, "
         f"cost_usd {real}, latency_ms {real} NOT NULL, status {integer} NOT NULL, "
         f"cache_hit {boolean} NOT NULL)"),
        "CREATE INDEX spend_log_time ON spend_log (time)",
        "CREATE INDEX spend_log_team_time ON spend_log (team, time)",
        "CREATE INDEX spend_log_key_time ON spend_log (key, time)",
        f"CREATE TABLE spend_notices (name TEXT PRIMARY KEY, sent_at {real} NOT NULL)",
    )


SPEND = Component("spend", (
    Migration(1, sqlite=_v1("REAL", "INTEGER", "INTEGER"),
              postgres=_v1("DOUBLE PRECISION", "BIGINT", "BOOLEAN")),
    Migration(2, sqlite=("ALTER TABLE spend_log ADD COLUMN saved_usd REAL",),
              postgres=("ALTER TABLE spend_log ADD COLUMN saved_usd DOUBLE PRECISION",)),
))
"""One row per answered request (``spend_log``; version 2 adds ``saved_usd``, what a
response-cache hit's stored answer cost), indexed by time, team and key; and the
scheduled reports and forecast alerts already sent (``spend_notices``), so that of several
instances sharing the store exactly one sends each."""
