"""``SqliteStore``: teams, users and keys in one SQLite file, built in (stdlib ``sqlite3``).

One connection lives on one dedicated thread; every call is queued to it, so the event loop
never waits on the disk. WAL journal, so readers in other processes never block. Every write
also appends to ``tenancy_changes``; each store polls that log (``poll_seconds``), so worker
processes sharing the file hear of each other's changes within about a second. Different
hosts cannot share a SQLite file: use PostgreSQL for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from modelmux.tenancy import rows
from modelmux.tenancy.base import StoreBase
from modelmux.tenancy.migrations import SCHEMA_VERSION_TABLE, Applied, Component, with_tenancy
from modelmux.tenancy.store import Conflict

log = logging.getLogger("modelmux.tenancy")

T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000
CHANGES_KEPT_SECONDS = 3600.0
POLL_BATCH = 1000


def migrate(conn: sqlite3.Connection, components: Iterable[Component]) -> list[Applied]:
    """Apply each component's pending migrations, one transaction per component.

    ``BEGIN IMMEDIATE`` takes the write lock first, so two processes starting at once apply
    each step once. ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    conn.execute(SCHEMA_VERSION_TABLE)
    applied = []
    for component in components:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT version FROM schema_version WHERE component = ?",
                               (component.name,)).fetchone()
            before = int(row[0]) if row else 0
            for migration in component.pending(before):
                for statement in migration.sqlite:
                    conn.execute(statement)
            after = max(before, component.latest)
            if after != before:
                conn.execute("INSERT INTO schema_version (component, version) VALUES (?, ?) "
                             "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                             (component.name, after))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if before > component.latest:
            log.warning("schema %s is at version %d, newer than this ModelMux knows (%d)",
                        component.name, before, component.latest)
        applied.append(Applied(component.name, before, after))
    return applied


def connect(path: Path) -> sqlite3.Connection:
    """A WAL-mode connection in autocommit mode; the file is created private (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. The switch answers "database is locked" at once, without waiting
    ``busy_timeout``, while another process opening the same new file holds its lock (workers
    starting together), so it is tried again for up to that long."""
    for _ in range(BUSY_TIMEOUT_MS // 50):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.05)
    conn.execute("PRAGMA journal_mode = WAL")


class SqliteStore(StoreBase):
    """``TenancyStore`` over one SQLite file at ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, components: Iterable[Component] = (),
                 poll_seconds: float = 0.25) -> None:
        super().__init__()
        self.path = Path(path)
        self.components = with_tenancy(components)
        self.poll_seconds = poll_seconds
        self.applied: list[Applied] = []
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # touched only on the executor's thread
        self._poller: asyncio.Task[None] | None = None
        self._seen = 0  # highest tenancy_changes.seq already delivered
        self._own: set[int] = set()  # seqs this store wrote (already delivered locally)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the store's thread: how other components that
        share this file (``components=``) reach it without blocking the event loop.

        Raises:
            RuntimeError: the store is not open.
        """
        if self._executor is None:
            raise RuntimeError("the SQLite store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._with_conn, fn, args)

    def _with_conn(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        assert self._conn is not None
        return fn(self._conn, *args)

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="modelmux-sqlite")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(self._executor, connect, self.path)
            self.applied = await self.run(migrate, self.components)
            self._seen = await self.run(_last_change)
        except BaseException:
            await self.close()
            raise
        self._poller = asyncio.create_task(self._poll(), name="modelmux-sqlite-changes")

    async def close(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._conn.close)
            self._conn = None
        executor.shutdown(wait=True)

    async def _poll(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                found = await self.run(_changes_after, self._seen)
            except sqlite3.Error as exc:
                if not failing:
                    log.warning("reading the tenancy change log failed: %s", exc)
                failing = True
                continue
            failing = False
            for seq, kind, id in found:
                self._seen = max(self._seen, seq)
                if seq in self._own:
                    self._own.discard(seq)
                else:
                    self._changed(kind, id)

    async def _write(self, kind: str, fn: Callable[..., tuple[T, tuple[str, str] | None]],
                     *args: Any) -> T:
        """Run ``fn`` in a write transaction; when it returns a changed id, log and tell."""
        result: T
        result, change = await self.run(_transaction, fn, args)
        if change is not None:
            seq, id = change
            self._own.add(seq)
            self._wrote(kind, id)
        return result

    async def _insert(self, kind: str, record: Any) -> None:
        await self._write(kind, _insert, kind, record)

    async def _find(self, kind: str, column: str, value: str) -> Any:
        return await self.run(_select_where, kind, column, value)

    async def _all(self, kind: str, team_id: str | None) -> list[Any]:
        return await self.run(_select_all, kind, team_id)

    async def _update(self, kind: str, id: str, changes: dict[str, Any]) -> Any:
        return await self._write(kind, _update, kind, id, changes)

    async def _delete(self, kind: str, id: str) -> bool:
        return await self._write(kind, _delete, kind, id)

    async def _revoke(self, id: str, at: float) -> bool:
        return await self._write("key", _revoke, id, at)

    async def touch_keys(self, last_used: dict[str, float]) -> None:
        if last_used:
            await self.run(_touch, list(last_used.items()))


def _transaction(conn: sqlite3.Connection, fn: Callable[..., Any],
                 args: tuple[Any, ...]) -> tuple[Any, tuple[int, str] | None]:
    """``fn(conn, *args)`` -> (result, changed id or None) inside BEGIN IMMEDIATE .. COMMIT;
    a changed id is appended to the change log in the same transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result, changed = fn(conn, *args)
        change = None
        if changed is not None:
            kind, id = changed
            now = time.time()
            cursor = conn.execute("INSERT INTO tenancy_changes (kind, id, at) VALUES (?, ?, ?)",
                                  (kind, id, now))
            conn.execute("DELETE FROM tenancy_changes WHERE at < ?", (now - CHANGES_KEPT_SECONDS,))
            change = (int(cursor.lastrowid or 0), id)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result, change


def _last_change(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM tenancy_changes").fetchone()[0])


def _changes_after(conn: sqlite3.Connection, seq: int) -> list[tuple[int, str, str]]:
    return conn.execute("SELECT seq, kind, id FROM tenancy_changes WHERE seq > ? ORDER BY seq "
                        "LIMIT ?", (seq, POLL_BATCH)).fetchall()


def _insert(conn: sqlite3.Connection, kind: str, record: Any) -> tuple[None, tuple[str, str]]:
    cols = rows.columns(kind)
    try:
        conn.execute(f"INSERT INTO {rows.TABLES[kind]} ({', '.join(cols)}) "
                     f"VALUES ({', '.join('?' * len(cols))})", rows.to_row(record))
    except sqlite3.IntegrityError:
        raise Conflict(f"a {kind} with this {'id or hash' if kind == 'key' else 'id or name'} "
                       "already exists") from None
    return None, (kind, record.id)


def _select_where(conn: sqlite3.Connection, kind: str, column: str, value: str) -> Any:
    row = conn.execute(f"SELECT {', '.join(rows.columns(kind))} FROM {rows.TABLES[kind]} "
                       f"WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else rows.from_row(kind, row)


def _select_all(conn: sqlite3.Connection, kind: str, team_id: str | None) -> list[Any]:
    sql = f"SELECT {', '.join(rows.columns(kind))} FROM {rows.TABLES[kind]}"
    params: tuple[Any, ...] = ()
    if team_id is not None:
        sql, params = sql + " WHERE team_id = ?", (team_id,)
    return [rows.from_row(kind, row) for row in conn.execute(sql + " ORDER BY created_at, id",
                                                             params)]


def _update(conn: sqlite3.Connection, kind: str, id: str,
            changes: dict[str, Any]) -> tuple[Any, tuple[str, str] | None]:
    current = _select_where(conn, kind, "id", id)
    if current is None:
        return None, None
    record = rows.changed(current, changes)
    cols = rows.columns(kind)
    try:
        conn.execute(f"UPDATE {rows.TABLES[kind]} SET {', '.join(f'{c} = ?' for c in cols)} "
                     "WHERE id = ?", (*rows.to_row(record), id))
    except sqlite3.IntegrityError:
        raise Conflict(f"another {kind} already has this "
                       f"{'hash' if kind == 'key' else 'name'}") from None
    return record, (kind, id)


def _delete(conn: sqlite3.Connection, kind: str, id: str) -> tuple[bool, tuple[str, str] | None]:
    """Refused (Conflict) while active keys, or a team's users, still name the record."""
    keys = conn.execute(f"SELECT COUNT(*) FROM tenancy_keys WHERE {kind}_id = ? "
                        "AND revoked_at IS NULL", (id,)).fetchone()[0]
    users = 0
    if kind == "team":
        users = conn.execute("SELECT COUNT(*) FROM tenancy_users WHERE team_id = ?",
                             (id,)).fetchone()[0]
    if keys or users:
        raise Conflict(f"{kind} {id} still has {keys} active key(s) and {users} user(s); "
                       "revoke or move them first")
    deleted = conn.execute(f"DELETE FROM {rows.TABLES[kind]} WHERE id = ?", (id,)).rowcount > 0
    return deleted, (kind, id) if deleted else None


def _revoke(conn: sqlite3.Connection, id: str, at: float) -> tuple[bool, tuple[str, str] | None]:
    found = conn.execute("UPDATE tenancy_keys SET revoked_at = COALESCE(revoked_at, ?) "
                         "WHERE id = ?", (at, id)).rowcount > 0
    return found, ("key", id) if found else None


def _touch(conn: sqlite3.Connection, last_used: list[tuple[str, float]]) -> None:
    """Never moves ``last_used_at`` backwards (batches from several processes interleave)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("UPDATE tenancy_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) "
                         "WHERE id = ?", [(at, id) for id, at in last_used])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
