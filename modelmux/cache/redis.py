"""The Redis backend: entries shared by every process and host that use the ``[state]`` Redis.

Each entry is one key (``[state] key_prefix`` + ``cache:`` + the cache key) holding the
encoded ``Entry``, expiring with its TTL. Every call is bounded by ``[state] timeout_ms``.
When Redis does not answer, the cache is skipped (a lookup is a miss, a store is dropped):
the outage is logged once and counted (``errors``), requests are served, and Redis is tried
again after ``[state] retry_ms``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from modelmux.cache.entry import Entry, decode_entry, encode_entry
from modelmux.config.state import StateConfig
from modelmux.state.redis import redis_client

log = logging.getLogger("modelmux.cache")

CLEAR_BATCH = 500
CLEAR_ROUNDS = 100_000
"""``clear`` scans at most this many batches (a bound on the loop, far above any real cache)."""


class RedisCache:
    """``CacheBackend`` over one Redis.

    Raises (at build):
        ConfigError: the ``redis`` package is not installed.
    """

    kind = "redis"
    immediate = False

    def __init__(self, config: StateConfig, max_entry_bytes: int,
                 on_error: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from redis.exceptions import RedisError

        self.config = config
        self.max_entry_bytes = max_entry_bytes
        self.clock = clock
        self.on_error = on_error  # counts each failed call (the /metrics counter)
        self.client: Any = redis_client(config)
        self.prefix = config.key_prefix + "cache:"
        self.evictions = 0  # Redis evicts on its own (maxmemory-policy); not seen here
        self.bytes = 0
        self.errors = 0
        self._failures: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._timeout = config.timeout_ms / 1000
        self._up = True
        self._retry_at = 0.0

    def _reachable(self) -> bool:
        return self._up or self.clock() >= self._retry_at

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self.on_error is not None:
            self.on_error()
        self._retry_at = self.clock() + self.config.retry_ms / 1000
        if self._up:
            self._up = False
            log.warning("the cache's Redis does not answer (%s: %s); serving without the cache "
                        "until it does", type(exc).__name__, exc)

    def _answered(self) -> None:
        if not self._up:
            self._up = True
            log.warning("the cache's Redis answers again")

    async def _call(self, command: Any) -> Any:
        if not self._reachable():
            return None
        try:
            result = await asyncio.wait_for(command, self._timeout)
        except self._failures as exc:
            self._failed(exc)
            return None
        self._answered()
        return result

    async def get(self, key: str) -> Entry | None:
        if not self._reachable():
            return None
        data = await self._call(self.client.get(self.prefix + key))
        return decode_entry(data) if data is not None else None

    async def put(self, key: str, entry: Entry, ttl: float) -> int:
        if entry.size(key) > self.max_entry_bytes:
            return -1
        if not self._reachable():
            return 0
        await self._call(self.client.set(self.prefix + key, encode_entry(entry),
                                         px=max(1, int(ttl * 1000))))
        return 0

    async def clear(self) -> int:
        """Delete every entry under this prefix (a bounded ``SCAN``); how many went."""
        count, cursor = 0, 0
        for _ in range(CLEAR_ROUNDS):
            found = await self._call(self.client.scan(cursor, match=self.prefix + "*",
                                                      count=CLEAR_BATCH))
            if found is None:
                break
            cursor, keys = found
            if keys:
                count += int(await self._call(self.client.unlink(*keys)) or 0)
            if not cursor:
                break
        return count

    def stats(self) -> dict[str, object]:
        return {"backend": self.kind, "up": self._up, "errors": self.errors}

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except self._failures:
            pass
