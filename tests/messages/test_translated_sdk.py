"""The Messages door over translated providers (the mock, an OpenAI-compatible fake upstream),
seen through the official ``anthropic`` SDK and a real in-process gateway."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.openai import FakeOpenAI
from tests.messages.helpers import MOCK_TOML, USER, WEATHER, client
from tests.providers.harness import Gateway, gateway
from tests.upstream import LOOPS, run


@contextlib.asynccontextmanager
async def compatible(answer: Any = TEXT, extra: str = "") -> AsyncIterator[tuple[Gateway,
                                                                                   FakeOpenAI]]:
    async with FakeOpenAI(answer=answer) as fake:
        toml = (f'[[provider]]\nname = "local"\ntype = "openai_compatible"\n'
                f'base_url = "{fake.origin}/v1"\nmodels = ["llama"]\nmax_retries = 0\n'
                f'[models]\n"claude-sonnet-4-5" = "llama"\n{extra}')
        async with gateway(toml) as gw:
            yield gw, fake


@pytest.mark.parametrize("loop", LOOPS)
def test_mock_create_and_stream_under_a_claude_alias(loop: str) -> None:
    async def main() -> None:
        async with gateway(MOCK_TOML) as gw, client(gw) as sdk:
            raw = await sdk.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=100, messages=USER,
                extra_body={"top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024}})
            message = await raw.parse()
            assert raw.headers["x-modelmux-dropped-fields"] == "top_k, thinking"
            assert raw.headers["request-id"] == raw.headers["x-request-id"]
            assert message.model == "claude-sonnet-4-5" and message.stop_reason == "end_turn"
            assert [b.type for b in message.content] == ["text"]
            assert message.content[0].text == "hello world " * 3  # type: ignore[union-attr]
            async with sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                           messages=USER) as stream:
                kinds = [event.type async for event in stream]
                final = await stream.get_final_message()
            assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
            assert final.content[0].text == "hello world " * 3  # type: ignore[union-attr]
            assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0

    run(loop, main())


def test_mock_tools_and_a_tool_result_follow_up() -> None:
    async def main() -> None:
        async with gateway(MOCK_TOML) as gw, client(gw) as sdk:
            first = await sdk.messages.create(model="mock", max_tokens=100, messages=USER,
                                              tools=[WEATHER])
            assert first.stop_reason == "tool_use"
            (call,) = first.content
            assert call.type == "tool_use" and call.name == "get_weather"
            assert isinstance(call.input, dict) and set(call.input) == {"city"}
            async with sdk.messages.stream(model="mock", max_tokens=100, messages=USER,
                                           tools=[WEATHER]) as stream:
                streamed = await stream.get_final_message()
            assert streamed.stop_reason == "tool_use" and streamed.content[0].type == "tool_use"
            follow = await sdk.messages.create(
                model="mock", max_tokens=100, tools=[WEATHER], tool_choice={"type": "none"},
                messages=[*USER, {"role": "assistant", "content": [call.model_dump()]},
                          {"role": "user", "content": [{"type": "tool_result",
                                                        "tool_use_id": call.id,
                                                        "content": "sunny"}]}])
            assert follow.stop_reason == "end_turn" and follow.content[0].type == "text"

    run("asyncio", main())


def test_compatible_upstream_gets_the_translated_request() -> None:
    async def main() -> None:
        async with compatible(TOOLS) as (gw, fake), client(gw) as sdk:
            message = await sdk.messages.create(
                model="claude-sonnet-4-5", max_tokens=77,
                extra_body={"temperature": 0.3, "top_p": 0.9},  # not arguments of every SDK
                stop_sequences=["END"], metadata={"user_id": "u-1"},
                system=[{"type": "text", "text": "Be brief.",
                         "cache_control": {"type": "ephemeral"}}],
                tools=[WEATHER], tool_choice={"type": "any", "disable_parallel_tool_use": True},
                messages=[
                    *USER,
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                         "input": {"city": "Paris"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                        {"type": "text", "text": "And tomorrow?"}]}])
            sent = json.loads(fake.raw_bodies[-1])
            assert sent["model"] == "llama" and sent["max_tokens"] == 77
            assert (sent["temperature"], sent["top_p"], sent["stop"], sent["user"]) == (
                0.3, 0.9, ["END"], "u-1")
            assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
            assert sent["tools"] == [{"type": "function", "function": {
                "name": "get_weather", "parameters": WEATHER["input_schema"],
                "description": "Weather in a city"}}]
            assert sent["messages"] == [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]}]
            assert message.model == "claude-sonnet-4-5" and message.stop_reason == "tool_use"
            assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
            assert message.content[1].input == {  # type: ignore[union-attr]
                "city": "Paris", "days": 3, "units": "°C"}
            assert (message.usage.input_tokens, message.usage.output_tokens) == (120, 42)

    run("asyncio", main())


@pytest.mark.parametrize("loop", LOOPS)
def test_compatible_stream_translates_text_tools_and_usage(loop: str) -> None:
    async def main() -> None:
        async with compatible(TOOLS) as (gw, fake), client(gw) as sdk:
            async with sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=50,
                                           messages=USER, tools=[WEATHER]) as stream:
                message = await stream.get_final_message()
            assert json.loads(fake.raw_bodies[-1])["stream_options"] == {"include_usage": True}
            assert message.content[0].text == TOOLS.text  # type: ignore[union-attr]
            calls = [(b.id, b.name, b.input) for b in message.content[1:]]  # type: ignore[union-attr]
            assert calls == [(c.id, c.name, json.loads(c.arguments)) for c in TOOLS.tool_calls]
            assert message.stop_reason == "tool_use"
            assert (message.usage.input_tokens, message.usage.output_tokens) == (120, 42)

    run(loop, main())


def test_count_tokens_is_an_estimate_for_translated_providers() -> None:
    async def main() -> None:
        async with gateway(MOCK_TOML) as gw, client(gw) as sdk:
            raw = await sdk.messages.with_raw_response.count_tokens(
                model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x" * 400}])
            assert raw.headers["x-modelmux-token-count"] == "estimate; tokenizer=chars"
            assert (await raw.parse()).input_tokens == 100

    run("asyncio", main())
