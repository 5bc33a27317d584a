"""The in-process backend: entries in least-recently-used order, bounded in bytes.

A ``put`` over ``max_entry_bytes`` is refused; one that takes the total over ``max_bytes``
first evicts the least recently used entries. An expired entry goes when met (``get``) or
in its turn as least recently used. Times come from ``clock`` (injected in tests).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from modelmux.cache.entry import Entry


class MemoryCache:
    """``CacheBackend`` over an ``OrderedDict``; one per process."""

    kind = "memory"
    immediate = True  # put completes before it returns: no task needed

    def __init__(self, max_bytes: int, max_entry_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.clock = clock
        self.bytes = 0
        self.evictions = 0
        self.errors = 0
        self._entries: OrderedDict[str, tuple[Entry, float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: str) -> Entry | None:
        """The live entry under ``key`` (marked recently used), or None."""
        found = self._entries.get(key)
        if found is None:
            return None
        entry, expires, size = found
        if self.clock() >= expires:
            del self._entries[key]
            self.bytes -= size
            return None
        self._entries.move_to_end(key)
        return entry

    async def get(self, key: str) -> Entry | None:
        return self.peek(key)

    def store(self, key: str, entry: Entry, ttl: float) -> int:
        """Keep ``entry`` for ``ttl`` seconds; the number of entries evicted to make room
        (-1: the entry alone is over a limit, so nothing was stored)."""
        size = entry.size(key)
        if size > self.max_entry_bytes or size > self.max_bytes:
            return -1
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[2]
        evicted = self.trim(size)
        self._entries[key] = (entry, self.clock() + ttl, size)
        self.bytes += size
        return evicted

    def trim(self, room: int = 0) -> int:
        """Evict least recently used entries until ``room`` more bytes fit; how many went."""
        evicted = 0
        entries = self._entries
        while entries and self.bytes + room > self.max_bytes:
            _, (_, _, dropped) = entries.popitem(last=False)
            self.bytes -= dropped
            evicted += 1
        self.evictions += evicted
        return evicted

    async def put(self, key: str, entry: Entry, ttl: float) -> int:
        return self.store(key, entry, ttl)

    async def clear(self) -> int:
        """Drop every entry; how many there were."""
        count = len(self._entries)
        self._entries.clear()
        self.bytes = 0
        return count

    def stats(self) -> dict[str, object]:
        return {"backend": self.kind, "entries": len(self._entries), "bytes": self.bytes,
                "max_bytes": self.max_bytes, "evictions": self.evictions}

    async def aclose(self) -> None:
        self._entries.clear()
