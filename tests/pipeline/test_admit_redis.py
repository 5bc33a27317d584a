"""Two admit stages, as two gateway instances would hold them, each over its own Redis limit
store pointing at one real redis-server: a key's rpm, tpm and max_parallel hold exactly
across both."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelmux.config.state import StateConfig
from modelmux.errors import RateLimited
from modelmux.pipeline.admit import AdmitStage, request_tokens, scope_spec
from modelmux.state.build import build_limits
from modelmux.state.redis import RedisLimits
from tests.pipeline.test_admit import answer, context, key, who
from tests.state.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.usefixtures("gate_twin")

__all__ = ["redis_server"]


def instances(server: RedisServer) -> tuple[AdmitStage, AdmitStage]:
    stores = [build_limits(StateConfig(backend="redis", url=server.url), 1) for _ in range(2)]
    assert all(isinstance(s, RedisLimits) for s in stores)
    return AdmitStage(stores[0]), AdmitStage(stores[1])


async def close(*stages: AdmitStage) -> None:
    for stage in stages:
        await stage.limits.aclose()


def test_an_rpm_limit_is_shared_exactly(redis_server: RedisServer) -> None:
    async def body() -> None:
        a, b = instances(redis_server)
        try:
            ident = who(key(rpm=5))
            granted, refused = [], []
            for i in range(12):
                ctx = context(ident)
                try:
                    await (a if i % 2 else b).on_request(ctx)
                except RateLimited as exc:
                    refused.append((exc, ctx))
                else:
                    granted.append(ctx)
            assert len(granted) == 5 and len(refused) == 7
            remaining = [dict(c.response_headers)[b"x-ratelimit-remaining-requests"]
                         for c in granted]
            assert remaining == [b"4", b"3", b"2", b"1", b"0"]
            exc, ctx = refused[0]
            assert "key k1 on requests per minute (limit 5)" in exc.message
            assert int(dict(exc.headers)[b"retry-after"]) >= 1
            assert dict(ctx.response_headers)[b"x-ratelimit-limit-requests"] == b"5"
        finally:
            await close(a, b)

    asyncio.run(body())


def test_tpm_and_parallel_are_shared(redis_server: RedisServer) -> None:
    async def body() -> None:
        a, b = instances(redis_server)
        try:
            ident = who(key(tpm=1000, max_parallel=1))
            first = context(ident)
            await a.on_request(first)
            with pytest.raises(RateLimited, match="parallel requests"):
                await b.on_request(context(ident))
            answer(a, first, (100, 200))
            assert isinstance(a.limits, RedisLimits)
            await a.limits.settled()
            second = context(ident)
            await b.on_request(second)  # the slot freed on a is free for b
            left = dict(second.response_headers)[b"x-ratelimit-remaining-tokens"]
            assert int(left) == 1000 - 300 - request_tokens(second)
            spec: Any = scope_spec("key", "k1", ident.key)  # type: ignore[arg-type]
            assert b.limits.available(spec)[1] is not None
            answer(b, second, (1, 1))
            assert isinstance(b.limits, RedisLimits)
            await b.limits.settled()
        finally:
            await close(a, b)

    asyncio.run(body())
