"""The real gateway in-process on 127.0.0.1:0, and the official SDK pointed at it.

``gateway(toml)`` builds ``App`` from config text and serves it with ``Server``; ``collect``
folds an SDK chunk stream into what a client sees (text, tool calls by index, usage).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import openai

from modelmux.api.app import App
from modelmux.config.schema import decode
from modelmux.server.lifecycle import Server
from modelmux.upstream.budget import BodyBudget
from tests.fakes.answers import Answer


@dataclass
class Gateway:
    app: App
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key="x", max_retries=0, timeout=10.0)


@contextlib.asynccontextmanager
async def gateway(toml: str, *, budget: BodyBudget | None = None) -> AsyncIterator[Gateway]:
    config = decode(toml)
    app = App(config, budget=budget)
    server = Server(app, config.server.limits())
    try:
        (_, port), *_ = await server.listen("127.0.0.1", 0)
        yield Gateway(app, port)
    finally:
        await server.shutdown()
        await app.aclose()


@dataclass
class Seen:
    """What the client assembled from a response, streamed or not."""

    text: str = ""
    tool_calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: tuple[int, int, int] | None = None
    model: str | None = None
    ids: set[str] = field(default_factory=set)


async def collect(stream: Any) -> Seen:
    seen = Seen()
    async for chunk in stream:
        seen.model = chunk.model
        seen.ids.add(chunk.id)
        if chunk.usage is not None:
            u = chunk.usage
            seen.usage = (u.prompt_tokens, u.completion_tokens, u.total_tokens)
        for choice in chunk.choices:
            delta = choice.delta
            seen.text += delta.content or ""
            for call in delta.tool_calls or []:
                empty = {"id": "", "name": "", "arguments": ""}
                slot = seen.tool_calls.setdefault(call.index, empty)
                if call.id:
                    slot["id"] = call.id
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
            if choice.finish_reason is not None:
                seen.finish_reason = choice.finish_reason
    return seen


def from_completion(completion: Any) -> Seen:
    message = completion.choices[0].message
    seen = Seen(text=message.content or "", finish_reason=completion.choices[0].finish_reason,
                model=completion.model, ids={completion.id})
    for index, call in enumerate(message.tool_calls or []):
        seen.tool_calls[index] = {"id": call.id, "name": call.function.name,
                                  "arguments": call.function.arguments}
    u = completion.usage
    if u is not None:
        seen.usage = (u.prompt_tokens, u.completion_tokens, u.total_tokens)
    return seen


def expected(answer: Answer, model: str, *, usage: bool = True) -> Seen:
    calls = {i: {"id": c.id, "name": c.name, "arguments": c.arguments}
             for i, c in enumerate(answer.tool_calls)}
    total = answer.prompt_tokens + answer.completion_tokens
    return Seen(text=answer.text, tool_calls=calls, finish_reason=answer.finish_reason,
                usage=(answer.prompt_tokens, answer.completion_tokens, total) if usage else None,
                model=model)


def same(seen: Seen, want: Seen) -> None:
    """Assert the client saw ``want`` (ids only need to be one per response)."""
    assert len(seen.ids) == 1, seen.ids
    assert (seen.text, seen.finish_reason, seen.usage, seen.model) == (
        want.text, want.finish_reason, want.usage, want.model)
    if want.tool_calls:
        assert seen.tool_calls == want.tool_calls
    else:
        assert not seen.tool_calls


TOOLS_PARAM: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather and time in Paris?"},
]
