"""The memory backend: least recently used entries go first, the total stays within
``max_bytes``, an entry over ``max_entry_bytes`` is refused, entries expire."""

from __future__ import annotations

import asyncio

from modelmux.cache.entry import ENTRY_OVERHEAD, Entry
from modelmux.cache.memory import MemoryCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry(size: int, mark: bytes = b"x") -> Entry:
    return Entry("json", mark * size)


def test_least_recently_used_entries_go_first_and_bytes_stay_bounded() -> None:
    one = entry(100).size("k1")
    cache = MemoryCache(max_bytes=3 * one, max_entry_bytes=one)
    for name in ("k1", "k2", "k3"):
        assert cache.store(name, entry(100), 60) == 0
    assert cache.bytes == 3 * one
    assert cache.peek("k1") is not None  # k1 is now the most recently used
    assert cache.store("k4", entry(100), 60) == 1
    assert cache.peek("k2") is None and cache.peek("k1") is not None
    assert cache.bytes <= cache.max_bytes and cache.evictions == 1
    for index in range(50):
        cache.store(f"n{index}", entry(100), 60)
        assert cache.bytes <= cache.max_bytes
    assert len(cache) == 3


def test_an_entry_over_the_cap_is_refused() -> None:
    cache = MemoryCache(max_bytes=10_000, max_entry_bytes=500)
    assert cache.store("big", entry(500 - ENTRY_OVERHEAD), 60) == -1
    assert cache.peek("big") is None and cache.bytes == 0


def test_replacing_a_key_counts_its_bytes_once() -> None:
    cache = MemoryCache(max_bytes=10_000, max_entry_bytes=10_000)
    cache.store("k", entry(100), 60)
    cache.store("k", entry(200), 60)
    assert cache.bytes == entry(200).size("k") and len(cache) == 1


def test_entries_expire_by_the_clock() -> None:
    clock = Clock()
    cache = MemoryCache(max_bytes=10_000, max_entry_bytes=10_000, clock=clock)
    cache.store("short", entry(10), 5)
    cache.store("long", entry(10), 50)
    clock.now = 5.0
    assert cache.peek("short") is None and cache.peek("long") is not None
    assert cache.bytes == entry(10).size("long")


def test_clear_and_trim() -> None:
    cache = MemoryCache(max_bytes=10_000, max_entry_bytes=10_000)
    for name in ("a", "b", "c"):
        cache.store(name, entry(1000), 60)
    cache.max_bytes = entry(1000).size("a")
    assert cache.trim() == 2 and cache.peek("c") is not None
    assert asyncio.run(cache.clear()) == 1 and cache.bytes == 0
