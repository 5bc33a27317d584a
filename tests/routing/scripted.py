"""Fake OpenAI upstreams with scripted faults behind the real in-process gateway.

``upstreams(n, routing)`` starts ``n`` fakes named ``p0``, ``p1``... (each a provider listing
``m``, no retries of its own) and the gateway with ``routing`` TOML appended; ``ask`` sends one
request with the official SDK and returns the text and response headers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import openai

from tests.fakes.openai import FakeOpenAI
from tests.providers.harness import MESSAGES, Gateway, collect, gateway


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def provider_toml(name: str, origin: str, models: str = '["m"]') -> str:
    return (f'[[provider]]\nname = "{name}"\ntype = "openai_compatible"\nmodels = {models}\n'
            f'base_url = "{origin}/v1"\nmax_retries = 0\n')


@asynccontextmanager
async def upstreams(count: int, routing: str = "", *, models: str = '["m"]',
                    **fake: Any) -> AsyncIterator[tuple[list[FakeOpenAI], Gateway]]:
    async with AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(FakeOpenAI(**fake)) for _ in range(count)]
        toml = "".join(provider_toml(f"p{i}", f.origin, models) for i, f in enumerate(fakes))
        gw = await stack.enter_async_context(gateway(toml + routing))
        yield fakes, gw


async def ask(gw: Gateway, stream: bool = False, model: str = "m",
              **extra: Any) -> tuple[str, dict[str, str]]:
    """The text the SDK client got, and the response headers."""
    messages: Any = MESSAGES
    async with gw.client() as client:
        if stream:
            chunks: Any = await client.chat.completions.create(model=model, messages=messages,
                                                               stream=True, **extra)
            seen = await collect(chunks)
            return seen.text, dict(chunks.response.headers)
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=messages, **extra)
        completion = raw.parse()
        return completion.choices[0].message.content or "", dict(raw.headers)


async def served_by(gw: Gateway, stream: bool = False, model: str = "m",
                    **extra: Any) -> tuple[str, str]:
    """(x-modelmux-provider, x-modelmux-attempts) of one successful request."""
    _, headers = await ask(gw, stream, model, **extra)
    return headers["x-modelmux-provider"], headers["x-modelmux-attempts"]


def record_sleeps(gw: Gateway) -> list[float]:
    """Make the gateway's backoff sleeps return at once; the list collects their lengths."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    gw.app.dispatcher.sleep = sleep
    return slept


class HedgeTimer:
    """The gateway's hedge delay, ended by the test instead of the clock: ``delays`` lists the
    delays asked for; no hedge fires until ``fire()``, so a test decides by events."""

    def __init__(self, gw: Gateway) -> None:
        self.delays: list[float] = []
        self._fire = asyncio.Event()
        gw.app.dispatcher.hedge_timer = self.wait

    async def wait(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self._fire.wait()

    def fire(self) -> None:
        """End the delays running now; later ones wait for the next ``fire()``."""
        self._fire.set()
        self._fire = asyncio.Event()


async def error_of(gw: Gateway, stream: bool = False, model: str = "m",
                   **extra: Any) -> openai.APIStatusError:
    try:
        await ask(gw, stream, model, **extra)
    except openai.APIStatusError as exc:
        return exc
    raise AssertionError("the request succeeded")
