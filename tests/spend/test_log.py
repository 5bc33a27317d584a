"""The spend log writer: batches off the request path, bounded while the store is down,
flushed at stop, pruned by retention; against a real SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from modelmux.config.features import AuthConfig
from modelmux.spend import db
from modelmux.spend.account import SpendRow
from modelmux.spend.log import SpendLog
from modelmux.spend.schema import SPEND
from modelmux.tenancy.open import open_store


def row(i: int, at: float = 1_000_000.0, team: str | None = "t1") -> SpendRow:
    return SpendRow(time=at + i, request_id=f"r{i}", key="k1", user=None, team=team,
                    model="m", provider="p", input_tokens=10, output_tokens=5,
                    cached_tokens=0, cache_write_tokens=0, cost_usd=0.5 if i % 2 else None,
                    latency_ms=1.0, status=200)


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM spend_log").fetchone()[0])


def test_rows_are_written_in_batches_and_flushed_at_stop(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.db"

    async def main() -> None:
        store = open_store(AuthConfig(sqlite_path=str(path)), tmp_path, components=(SPEND,))
        await store.open()
        writes: list[int] = []

        async def run_counted(fn: Any, rows: Any) -> Any:
            if fn is db.insert:
                writes.append(len(rows))
            return await store.run(fn, rows)

        spend_log = SpendLog(run_counted, retention_days=1, batch=3, interval=3600)
        for i in range(7):
            spend_log.add(row(i))
        assert writes == []  # nothing written on the request path
        await spend_log.aclose()
        assert sum(writes) == 7 and max(writes) <= 3
        usage = await store.run(db.usage, "team", 0.0, 2e9)
        assert usage == [{"group": "t1", "requests": 7, "input_tokens": 70,
                          "output_tokens": 35, "cost_usd": 1.5, "unpriced_requests": 4}]
        await store.close()

    run(main())
    assert count(path) == 7


def test_a_store_that_is_down_queues_up_to_the_bound_and_counts_the_rest(
        run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        up = asyncio.Event()
        written: list[SpendRow] = []

        async def flaky(fn: Any, rows: Any) -> Any:
            if not up.is_set():
                raise OSError("database is locked")
            written.extend(rows)
            return len(rows)

        spend_log = SpendLog(flaky, retention_days=1, batch=2, interval=3600, max_pending=5)
        for i in range(8):
            spend_log.add(row(i))
        assert not await spend_log.flush()
        assert (len(spend_log.pending), spend_log.dropped) == (5, 3)
        up.set()
        await spend_log.aclose()
        assert [r.request_id for r in written] == ["r0", "r1", "r2", "r3", "r4"]

    run(main())
    text = caplog.text
    assert "1 dropped so far" in text and "refused 2 row(s)" in text


def test_retention_prunes_old_rows(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(AuthConfig(sqlite_path=str(tmp_path / "m.db")), tmp_path,
                           components=(SPEND,))
        await store.open()
        now = 10 * 86_400.0
        spend_log = SpendLog(store.run, retention_days=2, clock=lambda: now)
        spend_log.add(row(0, at=now - 3 * 86_400))
        spend_log.add(row(1, at=now - 86_400))
        await spend_log.flush()
        assert await spend_log.prune() == 1
        left = await store.run(db.usage, "model", 0.0, now)
        assert left[0]["requests"] == 1
        await spend_log.aclose()
        await store.close()

    run(main())
