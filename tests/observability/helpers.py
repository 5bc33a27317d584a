"""The app on a loopback port with its upstream fakes, raw requests, and a parsed scrape."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from modelmux.api.app import App
from modelmux.config.providers import AnthropicConfig, MockProviderConfig, OpenAICompatibleConfig
from modelmux.config.schema import Config, StreamingConfig
from modelmux.providers.base import RetryPolicy
from tests.fakes.answers import Answer
from tests.fakes.claude import FakeClaude
from tests.fakes.http import Reply, Request
from tests.fakes.openai import FakeOpenAI
from tests.server.helpers import DEADLINE, connect, read_response, running

UPSTREAM_KEY = "sk-upstream-SECRET-0d1e"
ANTHROPIC_KEY = "sk-ant-SECRET-77aa"
ANSWER = Answer(text="The quick brown fox jumps over the lazy dog.", prompt_tokens=17,
                completion_tokens=9)
CLAUDE_ANSWER = Answer(text="Claude says hello.", prompt_tokens=23, completion_tokens=5)
MOCK_TEXT = "abcd"
MOCK_REPEAT = 10


def gateway_config(openai_origin: str, claude_origin: str) -> Config:
    """mock, an openai_compatible upstream (``gpt-x``) and Anthropic (``claude-x``)."""
    return Config(
        provider=[
            MockProviderConfig(name="mock", models=["mock"], text=MOCK_TEXT, repeat=MOCK_REPEAT,
                               chunks=4),
            OpenAICompatibleConfig(name="oai", models=["gpt-x"], base_url=f"{openai_origin}/v1",
                                   api_key=UPSTREAM_KEY),
            AnthropicConfig(name="claude", models=["claude-x"], base_url=claude_origin,
                            api_key=ANTHROPIC_KEY),
        ],
        streaming=StreamingConfig(mode="standard"),
    )


class SlowOpenAI(FakeOpenAI):
    """Takes ``delay`` seconds before each answer: a slow model, for the overhead arithmetic."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    async def handle(self, request: Request) -> Reply:
        await asyncio.sleep(self.delay)
        return await super().handle(request)


@contextlib.asynccontextmanager
async def gateway(openai: FakeOpenAI | None = None, *, claude: FakeClaude | None = None,
                  change: Callable[[Config], Config] | None = None,
                  ) -> AsyncIterator[tuple[App, int, FakeOpenAI, FakeClaude]]:
    """The app serving the three providers (``change`` edits their config); retries wait no
    time."""
    async with contextlib.AsyncExitStack() as stack:
        fake_openai = await stack.enter_async_context(openai or FakeOpenAI(api_key=UPSTREAM_KEY,
                                                                             answer=ANSWER))
        fake_claude = await stack.enter_async_context(
            claude or FakeClaude(api_key=ANTHROPIC_KEY, answer=CLAUDE_ANSWER))
        config = gateway_config(fake_openai.origin, fake_claude.origin)
        app = App(change(config) if change is not None else config)
        stack.push_async_callback(app.aclose)
        for provider in app.providers:
            upstream = getattr(provider, "upstream", None)
            if upstream is not None:
                upstream.retry = RetryPolicy(max_retries=2, base=0.0)
        _, port = await stack.enter_async_context(running(app))
        yield app, port, fake_openai, fake_claude


def chat_body(model: str, *, stream: bool, usage: bool = False,
              content: str = "hi") -> dict[str, Any]:
    payload: dict[str, Any] = {"model": model, "stream": stream,
                               "messages": [{"role": "user", "content": content}]}
    if usage:
        payload["stream_options"] = {"include_usage": True}
    return payload


async def request(port: int, method: str, path: str, payload: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; the response read to its end."""
    body = json.dumps(payload).encode() if payload is not None else b""
    lines = [f"{method} {path} HTTP/1.1", "Host: t", f"Content-Length: {len(body)}"]
    if payload is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    reader, writer = await connect(port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        if method == "HEAD":  # a head only, whatever its Content-Length says
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
            return int(head.split(b" ", 2)[1]), {}, b""
        return await asyncio.wait_for(read_response(reader), DEADLINE)
    finally:
        writer.close()


async def scrape(port: int) -> dict[str, list[Sample]]:
    """``GET /metrics`` parsed by prometheus_client: sample name → samples."""
    status, headers, body = await request(port, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``; 0 when there is none."""
    found = [s for s in samples.get(name, []) if labels.items() <= s.labels.items()]
    assert len(found) <= 1, found
    return found[0].value if found else 0.0


def total(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    return sum(s.value for s in samples.get(name, []) if labels.items() <= s.labels.items())
