"""The Redis backend against a real redis-server: entries with their TTL, clear, an outage
skipped and counted, and two gateways sharing one cache."""

from __future__ import annotations

import asyncio
import logging

import pytest

from modelmux.cache.entry import Entry
from modelmux.cache.redis import RedisCache
from modelmux.config.features import CacheConfig
from modelmux.config.providers import OpenAICompatibleConfig
from modelmux.config.schema import Config
from modelmux.config.state import StateConfig
from tests.api.helpers import chat, post
from tests.cache.test_stages import ANSWER, gateway
from tests.fakes.openai import FakeOpenAI
from tests.state.redis_server import RedisServer


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_round_trip_with_their_ttl_and_clear(redis_server: RedisServer) -> None:
    async def main() -> None:
        cache = RedisCache(StateConfig(url=redis_server.url), max_entry_bytes=10_000)
        try:
            entry = Entry("sse", b"data: [DONE]\n\n", "up", "gpt-x", (3, 4), 1.0)
            assert await cache.put("global:k", entry, 30) == 0
            assert await cache.get("global:k") == entry
            assert await cache.get("global:other") is None
            ttl = await cache.client.pttl("modelmux:cache:global:k")
            assert 0 < ttl <= 30_000
            assert await cache.put("global:big", Entry("json", b"x" * 20_000), 30) == -1
            await cache.client.set("modelmux:limits:keep", b"1")
            assert await cache.clear() == 1
            assert await cache.get("global:k") is None
            assert await cache.client.get("modelmux:limits:keep") == b"1"  # only cache keys go
        finally:
            await cache.aclose()
    asyncio.run(main())


def test_an_outage_is_a_miss_counted_and_logged_once(redis_server: RedisServer,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        clock = Clock()
        failures: list[int] = []
        cache = RedisCache(StateConfig(url=redis_server.url, timeout_ms=300, retry_ms=1000),
                           max_entry_bytes=10_000, on_error=lambda: failures.append(1),
                           clock=clock)
        try:
            await cache.put("k", Entry("json", b"{}"), 30)
            redis_server.stop()
            with caplog.at_level(logging.WARNING, logger="modelmux.cache"):
                assert await cache.get("k") is None
                assert await cache.put("k", Entry("json", b"{}"), 30) == 0  # skipped
                assert await cache.get("k") is None
            assert len(failures) == 1  # then no call until retry_ms has passed
            assert sum("does not answer" in r.getMessage() for r in caplog.records) == 1
            redis_server.start()
            clock.now = 2.0
            await cache.put("k", Entry("json", b"[]"), 30)
            found = await cache.get("k")
            assert found is not None and found.body == b"[]"
            assert cache.stats()["up"] is True
        finally:
            await cache.aclose()
    asyncio.run(main())


def test_two_gateways_share_one_redis_cache(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with FakeOpenAI(answer=ANSWER) as fake:
            provider = OpenAICompatibleConfig(name="up", models=["gpt-x"],
                                              base_url=f"{fake.origin}/v1")
            cfg = Config(provider=[provider], state=StateConfig(url=redis_server.url),
                         cache=CacheConfig(enabled=True, backend="redis"))
            async with gateway(cfg) as (one, port_one), gateway(cfg) as (two, port_two):
                for stream in (False, True):
                    _, headers, first = await post(port_one, chat(stream=stream, model="gpt-x"))
                    assert headers["x-modelmux-cache"] == "miss"
                    assert one.cache is not None
                    async with asyncio.timeout(5):  # the store runs as a task after the answer
                        while one.cache._tasks:
                            await asyncio.sleep(0.01)
                    _, headers, second = await post(port_two, chat(stream=stream, model="gpt-x"))
                    assert headers["x-modelmux-cache"] == "hit" and second == first
                assert len(fake.raw_bodies) == 2
                assert two.cache is not None and await two.cache.clear() == 2
                _, headers, _ = await post(port_one, chat(stream=False, model="gpt-x"))
                assert headers["x-modelmux-cache"] == "miss"
    asyncio.run(main())


def test_requests_are_served_while_the_cache_redis_is_down(redis_server: RedisServer) -> None:
    async def main() -> None:
        redis_server.stop()
        async with FakeOpenAI(answer=ANSWER) as fake:
            provider = OpenAICompatibleConfig(name="up", models=["gpt-x"],
                                              base_url=f"{fake.origin}/v1")
            cfg = Config(provider=[provider], state=StateConfig(url=redis_server.url),
                         cache=CacheConfig(enabled=True, backend="redis"))
            async with gateway(cfg) as (app, port):
                for _ in range(2):
                    status, headers, _ = await post(port, chat(stream=False, model="gpt-x"))
                    assert status == 200 and headers["x-modelmux-cache"] == "miss"
                assert len(fake.raw_bodies) == 2
                errors = [line for line in app.metrics.render().decode().splitlines()
                          if line.startswith("modelmux_cache_errors_total ")]
                assert errors and float(errors[0].split()[1]) >= 1
    asyncio.run(main())
