"""Retry timing of a provider as the call stage applies its policy, with the sleep and the
jitter injected: backoff and Retry-After.

The providers run against the fake servers over a real ``ConnectionPool``; only the waiting
between attempts is recorded instead of slept.
"""

from __future__ import annotations

import json

import pytest

from modelmux.config.providers import AnthropicConfig, OpenAICompatibleConfig
from modelmux.errors import ModelMuxError, RateLimited, ServiceUnavailable
from modelmux.pipeline.tries import complete, open_stream
from modelmux.providers.anthropic import AnthropicProvider
from modelmux.providers.base import ChatCall, RetryPolicy
from modelmux.providers.openai_compatible import OpenAICompatibleProvider
from modelmux.schemas.openai_chat import request_decoder
from modelmux.upstream import ConnectionPool
from tests.fakes.answers import TEXT
from tests.fakes.claude import FakeClaude
from tests.fakes.openai import FakeOpenAI
from tests.providers.harness import MESSAGES
from tests.upstream import refused_port, run


def call(stream: bool = False) -> ChatCall:
    raw = json.dumps({"model": "m", "messages": MESSAGES, "stream": stream}).encode()
    return ChatCall(request_decoder.decode(raw), raw, model="m", public_model="m",
                    completion_id="chatcmpl-1", created=1, request_id="r")


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def policy(sleeps: Sleeps, max_retries: int = 3, rand: float = 1.0) -> RetryPolicy:
    return RetryPolicy(max_retries=max_retries, base=0.5, cap=30.0, rand=lambda: rand, sleep=sleeps)


def openai_provider(
    up_origin: str, pool: ConnectionPool, retry: RetryPolicy
) -> OpenAICompatibleProvider:
    config = OpenAICompatibleConfig(name="p", models=["m"], base_url=f"{up_origin}/v1")
    return OpenAICompatibleProvider(config, pool, retry=retry)


def test_backoff_doubles_and_honours_retry_after() -> None:
    async def main() -> None:
        sleeps = Sleeps()
        async with FakeOpenAI(retry_after="3") as up, ConnectionPool() as pool:
            up.faults.extend(["500", "503", "429"])
            provider = openai_provider(up.origin, pool, policy(sleeps))
            body = json.loads(await complete(provider, call()))
            assert body["choices"][0]["message"]["content"] == TEXT.text
        assert sleeps.delays == [0.5, 1.0, 3.0]  # full jitter at rand()=1, then Retry-After

    run("asyncio", main())


def test_retry_after_longer_than_the_cap_goes_to_the_client() -> None:
    async def main() -> None:
        sleeps = Sleeps()
        async with FakeOpenAI(retry_after="120") as up, ConnectionPool() as pool:
            up.faults.extend(["429"])
            provider = openai_provider(up.origin, pool, policy(sleeps))
            with pytest.raises(RateLimited) as caught:
                await complete(provider, call())
            assert caught.value.headers == [(b"retry-after", b"120")]
            assert len(up.requests) == 1
        assert sleeps.delays == []

    run("asyncio", main())


def test_connect_errors_are_retried_up_to_max_retries() -> None:
    async def main() -> None:
        sleeps = Sleeps()
        async with ConnectionPool() as pool:
            provider = openai_provider(f"http://127.0.0.1:{refused_port()}", pool,
                                       policy(sleeps, max_retries=2, rand=0.5))
            with pytest.raises(ModelMuxError) as caught:
                await complete(provider, call())
            assert caught.value.code == "upstream_connect_error"
        assert sleeps.delays == [0.25, 0.5]

    run("asyncio", main())


def test_stream_overload_before_output_is_retried_then_reported() -> None:
    async def main() -> None:
        sleeps = Sleeps()
        async with FakeClaude() as up, ConnectionPool() as pool:
            up.faults.extend(["error_first", "529", "error_first"])
            config = AnthropicConfig(name="c", models=["m"], api_key="sk-ant-test",
                                     base_url=up.origin)
            provider = AnthropicProvider(config, pool, retry=policy(sleeps, max_retries=2))
            with pytest.raises(ServiceUnavailable):
                await open_stream(provider, call(stream=True))
            assert len(up.requests) == 3
        assert len(sleeps.delays) == 2

    run("asyncio", main())
