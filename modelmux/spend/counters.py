"""Budget counters: USD spent per (scope, id, period), in this process or shared in Redis.

``MemoryCounters`` serves one process. ``RedisCounters`` keeps them in the ``[state]`` Redis
(``INCRBYFLOAT``, atomic on the server), so every instance admits against one total; each
``add`` returns the new totals, so exactly one instance sees a threshold being crossed. While
Redis fails, requests are admitted (fail open) and the failure is logged once per outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["Counters", "MemoryCounters", "RedisCounters"]

log = logging.getLogger("modelmux.spend")


class Counters(Protocol):
    async def spent(self, keys: Sequence[str]) -> list[float]:
        """The totals of ``keys`` (0 for one never added to)."""
        ...

    async def add(self, keys: Sequence[str], usd: float, ttl: float) -> list[float]:
        """Add ``usd`` to every key (kept ``ttl`` seconds more); the new totals."""
        ...

    async def aclose(self) -> None: ...


class MemoryCounters:
    """This process's counters (a restart starts them from the spend log, when kept)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    async def spent(self, keys: Sequence[str]) -> list[float]:
        return self.spent_now(keys)

    async def add(self, keys: Sequence[str], usd: float, ttl: float) -> list[float]:
        return self.add_now(keys, usd)

    def spent_now(self, keys: Sequence[str]) -> list[float]:
        return [self.totals.get(key, 0.0) for key in keys]

    def add_now(self, keys: Sequence[str], usd: float) -> list[float]:
        """``add`` without a task: the next request already sees it."""
        out = []
        for key in keys:
            total = self.totals[key] = self.totals.get(key, 0.0) + usd
            out.append(total)
        return out

    async def aclose(self) -> None:
        return None


class RedisCounters:
    """Counters under ``prefix`` in Redis, through an existing redis-py asyncio ``client``."""

    def __init__(self, client: Any, prefix: str, timeout: float,
                 errors: tuple[type[BaseException], ...]) -> None:
        self.client = client
        self.prefix = prefix + "spend:"
        self.timeout = timeout
        self.errors = errors
        self._down = False

    async def spent(self, keys: Sequence[str]) -> list[float]:
        try:
            async with asyncio.timeout(self.timeout):
                values = await self.client.mget([self.prefix + key for key in keys])
        except self.errors as exc:
            self._failed(exc)
            return [0.0 for _ in keys]
        self._answered()
        return [float(value) if value is not None else 0.0 for value in values]

    async def add(self, keys: Sequence[str], usd: float, ttl: float) -> list[float]:
        try:
            async with asyncio.timeout(self.timeout):
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.incrbyfloat(self.prefix + key, usd)
                    if ttl != float("inf"):
                        pipe.expire(self.prefix + key, max(int(ttl), 1))
                answers = await pipe.execute()
        except self.errors as exc:
            self._failed(exc)
            return []
        self._answered()
        step = 1 if ttl == float("inf") else 2
        return [float(answers[i]) for i in range(0, len(answers), step)]

    def _failed(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning("budget counters: Redis is unreachable (%s); requests are admitted "
                        "and their spend is not counted until it answers", type(exc).__name__)

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.warning("budget counters: Redis answers again")

    async def aclose(self) -> None:
        return None  # the client belongs to the limit store
