"""Two gateways (two ``App`` instances, as two replicas would be) sharing one real Redis:
together they never exceed a deployment's rpm or max_concurrent; when Redis stops they keep
serving on their local share and say so in ``/metrics``, and share again when it is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import openai

from tests.fakes.openai import FakeOpenAI
from tests.observability.helpers import scrape, value
from tests.providers.harness import Gateway, gateway
from tests.routing.scripted import error_of, provider_toml, served_by
from tests.state.redis_server import RedisServer
from tests.upstream import run

ROUTING = """
[routing]
queue_timeout_ms = {queue}

[[routing.group]]
name = "g"
deployments = [{{ provider = "p0", model = "m", {limits} }}]

[state]
backend = "redis"
url = "{url}"
timeout_ms = 200
retry_ms = {retry}
"""


@asynccontextmanager
async def replicas(server: RedisServer, limits: str, queue: int = 0, retry: int = 1000
                   ) -> AsyncIterator[tuple[FakeOpenAI, Gateway, Gateway]]:
    """One fake upstream behind two gateways that share ``server``."""
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(FakeOpenAI())
        toml = provider_toml("p0", fake.origin) + ROUTING.format(
            queue=queue, limits=limits, url=server.url, retry=retry)
        one = await stack.enter_async_context(gateway(toml))
        two = await stack.enter_async_context(gateway(toml))
        yield fake, one, two


async def outcome(gw: Gateway) -> int:
    try:
        await served_by(gw, model="g")
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def test_two_gateways_together_never_exceed_the_rpm(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with replicas(redis_server, "rpm = 4") as (fake, one, two):
            got = [await outcome(one if i % 2 else two) for i in range(10)]
            served = got.count(200)
            assert 4 <= served <= 5 and got.count(429) == 10 - served, got  # 5: a slow refill
            assert len(fake.requests) == served  # the upstream never saw the refused ones
            for gw in (one, two):
                samples = await scrape(gw.port)
                assert value(samples, "modelmux_state_up", backend="redis") == 1
                assert value(samples, "modelmux_state_local_decisions_total") == 0

    run("asyncio", main())


def test_a_slot_freed_on_one_gateway_serves_a_request_queued_on_the_other(
        redis_server: RedisServer) -> None:
    async def main() -> None:
        async with replicas(redis_server, "max_concurrent = 2", queue=5000) as (fake, one, two):
            fake.faults.extend(["hold", "hold"])  # two streams that stay open mid-way
            messages: Any = [{"role": "user", "content": "hi"}]
            async with one.client() as c1, two.client() as c2:
                held = [await c.chat.completions.create(model="g", messages=messages,
                                                        stream=True) for c in (c1, c2)]
                for stream in held:
                    await anext(aiter(stream))  # both slots are taken while these are open
                waiting = asyncio.ensure_future(served_by(two, model="g"))
                for _ in range(500):  # bounded: until it queues for a slot
                    if two.app.dispatcher.queued:
                        break
                    await asyncio.sleep(0.01)
                assert two.app.dispatcher.queued == 1 and len(fake.requests) == 2
                await held[0].close()  # gateway one frees its slot; two's queue sees it
                assert await waiting == ("p0", "1")
                assert len(fake.requests) == 3
                await held[1].close()

    run("asyncio", main())


def test_redis_stopped_mid_run_requests_still_served_then_shared_again(
        redis_server: RedisServer) -> None:
    async def main() -> None:
        async with replicas(redis_server, "rpm = 1000", retry=50) as (_, one, two):
            assert await outcome(one) == 200
            redis_server.stop()
            assert [await outcome(gw) for gw in (one, two, one)] == [200, 200, 200]
            samples = await scrape(one.port)
            assert value(samples, "modelmux_state_up", backend="redis") == 0
            assert value(samples, "modelmux_state_outages_total") == 1
            assert value(samples, "modelmux_state_local_decisions_total") == 2
            redis_server.start()
            for _ in range(100):  # bounded: retried after retry_ms
                assert await outcome(one) == 200
                if one.app.limits.status().up:
                    break
                await asyncio.sleep(0.02)
            samples = await scrape(one.port)
            assert value(samples, "modelmux_state_up", backend="redis") == 1
            assert value(samples, "modelmux_state_outages_total") == 1

    run("asyncio", main())


def test_error_of_is_the_openai_429_when_both_share_an_exhausted_limit(
        redis_server: RedisServer) -> None:
    async def main() -> None:
        async with replicas(redis_server, "rpm = 1") as (fake, one, two):
            assert await served_by(one, model="g") == ("p0", "1")
            exc = await error_of(two, model="g")
            assert isinstance(exc, openai.RateLimitError)
            assert exc.response.headers["retry-after"] == "60"
            assert exc.response.headers["x-modelmux-attempts"] == "0"
            assert len(fake.requests) == 1

    run("asyncio", main())
