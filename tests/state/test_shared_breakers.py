"""Circuit openings shared through a real Redis: a deployment one replica found failing is
skipped by the other until its cooldown ends, without the other paying a failure for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from modelmux.routing.breaker import BreakerState
from tests.fakes.openai import FakeOpenAI
from tests.providers.harness import Gateway, gateway
from tests.routing.scripted import provider_toml, served_by
from tests.state.redis_server import RedisServer
from tests.upstream import run

ROUTING = """
[[routing.group]]
name = "g"
deployments = [{{ provider = "p0", model = "m" }}, {{ provider = "p1", model = "m", priority = 1 }}]

[routing.breaker]
consecutive_failures = 1
cooldown = 30

[state]
backend = "redis"
url = "{url}"
breaker_sync_ms = 20
share_breakers = {share}
"""


@asynccontextmanager
async def replicas(server: RedisServer, share: str
                   ) -> AsyncIterator[tuple[list[FakeOpenAI], Gateway, Gateway]]:
    """Two fake upstreams behind two gateways that share ``server``."""
    async with AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(FakeOpenAI()) for _ in range(2)]
        toml = "".join(provider_toml(f"p{i}", f.origin) for i, f in enumerate(fakes))
        toml += ROUTING.format(url=server.url, share=share)
        one = await stack.enter_async_context(gateway(toml))
        two = await stack.enter_async_context(gateway(toml))
        yield fakes, one, two


def test_an_open_circuit_on_one_replica_is_skipped_by_the_other(
        redis_server: RedisServer) -> None:
    async def main() -> None:
        async with replicas(redis_server, share="true") as (fakes, one, two):
            assert await served_by(two, model="g") == ("p0", "1")  # two starts its sync
            fakes[0].faults.append("500")
            assert await served_by(one, model="g") == ("p1", "2")  # p0 failed: one opens it
            breaker = two.app.router.breaker("p0/m")
            for _ in range(300):  # bounded: two reads the opening within a sync or two
                if breaker.state(two.app.router.clock()) is BreakerState.OPEN:
                    break
                await asyncio.sleep(0.01)
            assert breaker.state(two.app.router.clock()) is BreakerState.OPEN
            assert 25 < breaker.open_for(two.app.router.clock()) <= 30
            assert breaker.times_opened == 0  # held open for the other replica, not its own
            assert await served_by(two, model="g") == ("p1", "1")  # p0 not tried at all
            assert len(fakes[0].requests) == 2
            assert one.app.router.breaker("p0/m").times_opened == 1
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(redis_server.url)
            assert 29_000 < await client.pttl("modelmux:breakers") <= 31_000
            await client.aclose()

    run("asyncio", main())


def test_share_breakers_false_keeps_them_per_process(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with replicas(redis_server, share="false") as (fakes, one, two):
            assert one.app.breakers is None
            fakes[0].faults.append("500")
            assert await served_by(one, model="g") == ("p1", "2")
            assert await served_by(two, model="g") == ("p0", "1")  # two still trusts p0

    run("asyncio", main())
