"""What a cache backend offers (``CacheBackend``) and the one ``[cache] backend`` picks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from modelmux.cache.entry import Entry
from modelmux.config.features import CacheConfig
from modelmux.config.state import StateConfig


class CacheBackend(Protocol):
    """Entries by key. ``immediate``: ``put`` is done when it returns (no task needed).
    ``put`` returns the entries evicted to make room, -1 when the entry is refused as too big.
    A backend never raises for its own outages: a lookup is then a miss."""

    kind: str
    immediate: bool
    bytes: int
    evictions: int
    errors: int

    async def get(self, key: str) -> Entry | None: ...
    async def put(self, key: str, entry: Entry, ttl: float) -> int: ...
    async def clear(self) -> int: ...
    def stats(self) -> dict[str, object]: ...
    async def aclose(self) -> None: ...


def build_backend(config: CacheConfig, state: StateConfig,
                  on_error: Callable[[], None] | None = None) -> CacheBackend:
    """The memory backend, or Redis at ``[state] url`` (``on_error`` counts its failures).

    Raises:
        ConfigError: ``backend = "redis"`` without the ``redis`` package.
    """
    if config.backend == "redis":
        from modelmux.cache.redis import RedisCache

        return RedisCache(state, config.max_entry_bytes, on_error)
    from modelmux.cache.memory import MemoryCache

    return MemoryCache(config.max_bytes, config.max_entry_bytes)
