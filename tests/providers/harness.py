"""The real gateway in-process on 127.0.0.1:0, and the official SDK pointed at it.

``gateway(toml)`` builds ``App`` from config text and serves it with ``Server``; ``serving``
starts a fake upstream and a gateway configured for it (``provider_toml``); ``collect`` folds
an SDK chunk stream into what a client sees (text, tool calls by index, usage); the ``ask_*``
and ``*_error`` helpers are the calls every provider's tests make.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai
import pytest

from modelmux.api.app import App
from modelmux.config.schema import decode
from modelmux.server.lifecycle import Server
from modelmux.upstream.budget import BodyBudget
from tests.fakes.answers import Answer
from tests.fakes.google_oauth import FakeGoogleOAuth

F = TypeVar("F", bound=AbstractAsyncContextManager[Any])
E = TypeVar("E", bound=openai.APIError)


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


def provider_toml(name: str, kind: str, base_url: str, models: Sequence[str], *lines: str) -> str:
    """One ``[[provider]]`` table: the keys every test sets, then ``lines`` as written."""
    head = [f'name = "{name}"', f'type = "{kind}"', f'base_url = "{base_url}"',
            f"models = {json.dumps(list(models))}"]
    return "\n".join(["[[provider]]", *head, *(line for line in lines if line)]) + "\n"


def vertex_keys(oauth: FakeGoogleOAuth, region: str) -> str:
    """A ``vertex`` table's project, region and the service-account key ``oauth`` checks."""
    return (f'project = "fake-project"\nregion = "{region}"\n'
            f"credentials_json = '''{json.dumps(oauth.service_account_info())}'''")


@contextlib.asynccontextmanager
async def serving(fake: F, table: Callable[[F], str]) -> AsyncIterator[tuple[Gateway, F]]:
    """Start ``fake``, then a gateway configured by ``table(fake)`` (which knows its origin)."""
    async with fake as started, gateway(table(started)) as gw:
        yield gw, started


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


def json_args(seen: Seen) -> Seen:
    """Tool arguments parsed as JSON, for upstreams that re-serialise them."""
    for call in seen.tool_calls.values():
        call["arguments"] = json.loads(call["arguments"])
    return seen


def same_minting_ids(seen: Seen, want: Seen) -> None:
    """``same`` for upstreams that send no call ids (Gemini): the gateway's are well-formed
    and distinct; arguments compare as JSON, since Gemini re-serialises them."""
    ids = [call["id"] for call in seen.tool_calls.values()]
    assert all(MINTED_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids), ids
    for index, call in seen.tool_calls.items():
        call["id"] = want.tool_calls[index]["id"]
    same(json_args(seen), json_args(want))


async def ask_each_way(client: openai.AsyncOpenAI, model: str, answer: Answer, *,
                       plain: bool = True, check: Callable[[Seen, Seen], None] = same) -> None:
    """Ask with tools, whole and streamed with usage, then (``plain``) streamed without tools
    or usage; ``check(seen, want)`` each answer against ``answer``."""
    done = await client.chat.completions.create(model=model, messages=MESSAGES,
                                                tools=TOOLS_PARAM)
    check(from_completion(done), expected(answer, model))
    stream = await client.chat.completions.create(
        model=model, messages=MESSAGES, tools=TOOLS_PARAM, stream=True,
        stream_options={"include_usage": True})
    check(await collect(stream), expected(answer, model))
    if plain:
        stream = await client.chat.completions.create(model=model, messages=MESSAGES,
                                                      stream=True)
        check(await collect(stream), expected(answer, model, usage=False))


async def ask_streamed(client: openai.AsyncOpenAI, model: str) -> Seen:
    """What the SDK assembles from one plain streamed request."""
    return await collect(await client.chat.completions.create(model=model, messages=MESSAGES,
                                                               stream=True))


async def call_error(client: openai.AsyncOpenAI, model: str, exc: type[E], *, stream: bool,
                     **params: Any) -> E:
    """The ``exc`` the SDK raises for one request, whole or streamed to its end."""
    with pytest.raises(exc) as caught:
        answer: Any = await client.chat.completions.create(model=model, messages=MESSAGES,
                                                           stream=stream, **params)
        if stream:
            await collect(answer)
    return caught.value


async def mid_stream_error(client: openai.AsyncOpenAI, model: str) -> openai.APIError:
    """The error the SDK raises while reading a stream that began well."""
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as caught:
        await collect(stream)
    return caught.value


MINTED_ID = re.compile(r"call_[A-Za-z0-9_-]+_\d")
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
