"""``PostgresStore``: teams, users and keys in PostgreSQL (asyncpg), shared by many instances.

Every write sends ``NOTIFY modelmux_tenancy, 'kind:id'`` in its own transaction, so it is
delivered at commit, to every instance, within milliseconds. Each store keeps one extra
connection that LISTENs; it is checked every ``ping_seconds`` and reopened when lost, after
which subscribers get ``("*", "")`` (drop everything: notices sent meanwhile are gone).
Needs the ``asyncpg`` package (``pip install 'modelmux[postgres]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from modelmux.config.problems import ConfigError
from modelmux.tenancy import rows
from modelmux.tenancy.base import StoreBase
from modelmux.tenancy.changes import CHANNEL, EVERYTHING, parse, payload
from modelmux.tenancy.migrations import SCHEMA_VERSION_TABLE, Applied, Component, with_tenancy
from modelmux.tenancy.store import Conflict

log = logging.getLogger("modelmux.tenancy")

PING_TIMEOUT = 5.0
"""Seconds the LISTEN connection has to answer a ping before it counts as lost."""
MIGRATION_LOCK = 0x6D6D736368656D61
"""``pg_advisory_xact_lock`` key ("mmschema"): instances starting together migrate in turn."""


def _asyncpg() -> Any:
    try:
        import asyncpg  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigError('[auth] store = "postgres" needs the asyncpg package: '
                          "pip install 'modelmux[postgres]'") from None
    return asyncpg


async def migrate(conn: Any, components: Iterable[Component]) -> list[Applied]:
    """Apply each component's pending migrations on ``conn``, one transaction per component,
    under an advisory lock so concurrent starts apply each step once."""
    applied = []
    for component in components:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(SCHEMA_VERSION_TABLE)
            before = await conn.fetchval(
                "SELECT version FROM schema_version WHERE component = $1", component.name) or 0
            for migration in component.pending(before):
                for statement in migration.postgres:
                    await conn.execute(statement)
            after = max(before, component.latest)
            if after != before:
                await conn.execute(
                    "INSERT INTO schema_version (component, version) VALUES ($1, $2) "
                    "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    component.name, after)
        if before > component.latest:
            log.warning("schema %s is at version %d, newer than this ModelMux knows (%d)",
                        component.name, before, component.latest)
        applied.append(Applied(component.name, before, after))
    return applied


def _select(kind: str) -> str:
    return f"SELECT {', '.join(rows.columns(kind))} FROM {rows.TABLES[kind]}"


class PostgresStore(StoreBase):
    """``TenancyStore`` over PostgreSQL at ``dsn``; ``pool`` is open to components that
    share the database (``components=``)."""

    def __init__(self, dsn: str, *, components: Iterable[Component] = (), min_size: int = 1,
                 max_size: int = 4, ping_seconds: float = 5.0) -> None:
        super().__init__()
        self.dsn = dsn
        self.components = with_tenancy(components)
        self.min_size, self.max_size = min_size, max_size
        self.ping_seconds = ping_seconds
        self.applied: list[Applied] = []
        self.pool: Any = None
        self._listener: Any = None
        self._watch: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Raises: ConfigError (asyncpg missing), OSError or asyncpg errors (unreachable)."""
        if self.pool is not None:
            return
        asyncpg = _asyncpg()
        self.pool = await asyncpg.create_pool(self.dsn, min_size=self.min_size,
                                              max_size=self.max_size)
        try:
            async with self.pool.acquire() as conn:
                self.applied = await migrate(conn, self.components)
            await self._listen()
        except BaseException:
            await self.close()
            raise
        self._watch = asyncio.create_task(self._keep_listening(), name="modelmux-pg-listen")

    async def close(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close(timeout=5)
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()

    async def _listen(self) -> None:
        conn = await _asyncpg().connect(self.dsn)
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except BaseException:
            conn.terminate()
            raise
        self._listener = conn

    def _notified(self, conn: Any, pid: int, channel: str, text: str) -> None:
        notice = parse(text)
        if notice is not None:
            self._changed(*notice)

    async def _keep_listening(self) -> None:
        """Ping the LISTEN connection; when it fails, reopen it and say "drop everything"."""
        asyncpg = _asyncpg()
        errors = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
        lost = False
        while True:
            await asyncio.sleep(self.ping_seconds)
            if self._listener is not None:
                try:
                    await asyncio.wait_for(self._listener.fetchval("SELECT 1"), PING_TIMEOUT)
                    continue
                except errors as exc:
                    log.warning("tenancy LISTEN connection lost (%s); reconnecting", exc)
                    self._listener.terminate()
                    self._listener = None
            try:
                await self._listen()
            except errors as exc:
                if not lost:
                    log.warning("tenancy LISTEN reconnect failed (%s); retrying", exc)
                lost = True
                continue
            lost = False
            log.warning("tenancy LISTEN connection back; dropping every cached record")
            self._changed(*EVERYTHING)

    def _acquire(self) -> Any:
        if self.pool is None:
            raise RuntimeError("the PostgreSQL store is not open")
        return self.pool.acquire()

    async def _notify(self, conn: Any, kind: str, id: str) -> None:
        """Inside the write's transaction: delivered to every listener at commit."""
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload(kind, id))

    async def _insert(self, kind: str, record: Any) -> None:
        cols = rows.columns(kind)
        marks = ", ".join(f"${n}" for n in range(1, len(cols) + 1))
        asyncpg = _asyncpg()
        async with self._acquire() as conn, conn.transaction():
            try:
                await conn.execute(f"INSERT INTO {rows.TABLES[kind]} ({', '.join(cols)}) "
                                   f"VALUES ({marks})", *rows.to_row(record))
            except asyncpg.UniqueViolationError:
                raise Conflict(f"a {kind} with this "
                               f"{'id or hash' if kind == 'key' else 'id or name'} "
                               "already exists") from None
            await self._notify(conn, kind, record.id)
        self._wrote(kind, record.id)

    async def _find(self, kind: str, column: str, value: str) -> Any:
        async with self._acquire() as conn:
            row = await conn.fetchrow(f"{_select(kind)} WHERE {column} = $1", value)
        return None if row is None else rows.from_row(kind, row)

    async def _all(self, kind: str, team_id: str | None) -> list[Any]:
        args: tuple[str, ...]
        sql, args = _select(kind), ()
        if team_id is not None:
            sql, args = sql + " WHERE team_id = $1", (team_id,)
        async with self._acquire() as conn:
            found = await conn.fetch(sql + " ORDER BY created_at, id", *args)
        return [rows.from_row(kind, row) for row in found]

    async def _update(self, kind: str, id: str, changes: dict[str, Any]) -> Any:
        cols = rows.columns(kind)
        sets = ", ".join(f"{col} = ${n}" for n, col in enumerate(cols, start=1))
        asyncpg = _asyncpg()
        async with self._acquire() as conn, conn.transaction():
            row = await conn.fetchrow(f"{_select(kind)} WHERE id = $1 FOR UPDATE", id)
            if row is None:
                return None
            record = rows.changed(rows.from_row(kind, row), changes)
            try:
                await conn.execute(f"UPDATE {rows.TABLES[kind]} SET {sets} "
                                   f"WHERE id = ${len(cols) + 1}", *rows.to_row(record), id)
            except asyncpg.UniqueViolationError:
                raise Conflict(f"another {kind} already has this "
                               f"{'hash' if kind == 'key' else 'name'}") from None
            await self._notify(conn, kind, id)
        self._wrote(kind, id)
        return record

    async def _delete(self, kind: str, id: str) -> bool:
        async with self._acquire() as conn, conn.transaction():
            await conn.execute(f"SELECT 1 FROM {rows.TABLES[kind]} WHERE id = $1 FOR UPDATE", id)
            keys = await conn.fetchval(f"SELECT COUNT(*) FROM tenancy_keys WHERE {kind}_id = $1 "
                                       "AND revoked_at IS NULL", id)
            users = 0
            if kind == "team":
                users = await conn.fetchval(
                    "SELECT COUNT(*) FROM tenancy_users WHERE team_id = $1", id)
            if keys or users:
                raise Conflict(f"{kind} {id} still has {keys} active key(s) and {users} "
                               "user(s); revoke or move them first")
            status = await conn.execute(f"DELETE FROM {rows.TABLES[kind]} WHERE id = $1", id)
            deleted: bool = status != "DELETE 0"
            if deleted:
                await self._notify(conn, kind, id)
        if deleted:
            self._wrote(kind, id)
        return deleted

    async def _revoke(self, id: str, at: float) -> bool:
        async with self._acquire() as conn, conn.transaction():
            status = await conn.execute("UPDATE tenancy_keys SET revoked_at = "
                                        "COALESCE(revoked_at, $1) WHERE id = $2", at, id)
            found: bool = status != "UPDATE 0"
            if found:
                await self._notify(conn, "key", id)
        if found:
            self._wrote("key", id)
        return found

    async def touch_keys(self, last_used: dict[str, float]) -> None:
        """One statement for the whole batch; never moves ``last_used_at`` backwards."""
        if not last_used:
            return
        async with self._acquire() as conn:
            await conn.execute(
                "UPDATE tenancy_keys AS k SET last_used_at = "
                "GREATEST(COALESCE(k.last_used_at, 0), v.at) "
                "FROM unnest($1::text[], $2::double precision[]) AS v(id, at) WHERE k.id = v.id",
                list(last_used), list(last_used.values()))
