"""Change notices over Redis pub/sub (``[state] backend = "redis"``), with a real redis-server:
two SQLite stores on one file whose change-log polling is off still hear each other's writes,
an instance skips its own messages, and a lost subscription comes back saying "drop all"."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelmux.config.state import StateConfig
from modelmux.tenancy.changes import EVERYTHING
from modelmux.tenancy.fanout import RedisFanout
from modelmux.tenancy.keys import mint
from modelmux.tenancy.sqlite import SqliteStore
from tests.state.redis_server import RedisServer, redis_server
from tests.upstream import run

__all__ = ["redis_server"]

TIMEOUT = 10.0
NO_POLL = 3600.0  # the change log is never read in these tests: only Redis can tell


class Heard:
    """A store's ``on_change`` notices; ``wait`` until one has come ``times`` times."""

    def __init__(self) -> None:
        self.notices: list[tuple[str, str]] = []
        self._new = asyncio.Event()

    def __call__(self, kind: str, id: str) -> None:
        self.notices.append((kind, id))
        self._new.set()

    async def wait(self, kind: str, id: str, times: int = 1) -> None:
        async with asyncio.timeout(TIMEOUT):
            while self.notices.count((kind, id)) < times:
                self._new.clear()
                await self._new.wait()


def fanout_config(redis: RedisServer) -> StateConfig:
    return StateConfig(backend="redis", url=redis.url, key_prefix="t:")


def test_sqlite_instances_hear_each_other_through_redis(tmp_path: Path,
                                                         redis_server: RedisServer) -> None:
    async def main() -> None:
        stores = [SqliteStore(tmp_path / "mm.db", poll_seconds=NO_POLL) for _ in range(2)]
        fanouts = [RedisFanout(fanout_config(redis_server), store) for store in stores]
        heard = [Heard(), Heard()]
        for store, fanout, listener in zip(stores, fanouts, heard, strict=True):
            store.on_change(listener)
            await store.open()
            await fanout.start()
        a, b = stores
        try:
            _, key = mint(name="leaving")
            await a.create_key(key)
            await a.revoke_key(key.id, 1.0)
            await heard[1].wait("key", key.id, times=2)
            _, other = mint(name="from-b")
            await b.create_key(other)
            await heard[0].wait("key", other.id)
            # Redis delivers in order: A's own two messages reached A before B's, and were
            # skipped (A's subscribers were told when its writes returned)
            assert heard[0].notices == [("key", key.id), ("key", key.id), ("key", other.id)]
            assert heard[1].notices == [("key", key.id), ("key", key.id), ("key", other.id)]
        finally:
            for fanout, store in zip(fanouts, stores, strict=True):
                await fanout.close()
                await store.close()

    run("asyncio", main(), timeout=30)


def test_a_lost_subscription_comes_back_and_drops_every_cache(tmp_path: Path,
                                                              redis_server: RedisServer) -> None:
    async def main() -> None:
        stores = [SqliteStore(tmp_path / "mm.db", poll_seconds=NO_POLL) for _ in range(2)]
        fanouts = [RedisFanout(fanout_config(redis_server), store, retry_seconds=0.05)
                   for store in stores]
        heard = Heard()
        stores[1].on_change(heard)
        for store, fanout in zip(stores, fanouts, strict=True):
            await store.open()
            await fanout.start()
        try:
            redis_server.stop()
            await stores[0].create_key(mint(name="unheard")[1])  # its publish fails, logged
            redis_server.start()
            await heard.wait(*EVERYTHING)
            _, key = mint(name="heard")
            await stores[0].create_key(key)
            await heard.wait("key", key.id)
        finally:
            for fanout, store in zip(fanouts, stores, strict=True):
                await fanout.close()
                await store.close()

    run("asyncio", main(), timeout=30)
