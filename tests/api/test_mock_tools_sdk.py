"""The mock as a model with tools and ``n``, seen through the official SDK and a real server."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.api.helpers import CHROME, CHUNKS, REPEAT, TEXT, config
from tests.api.test_chat_sdk import MESSAGES, sdk

ANSWER = TEXT * REPEAT
WEATHER: Any = {"type": "function", "function": {
    "name": "weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "required": ["city", "unit"], "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "kelvin"]}}}}}
TIME: Any = {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}}
ARGUMENTS = {"city": "mock", "unit": "celsius"}
BUFFERED = {"User-Agent": CHROME}  # a browser gets the coalesced stream


async def streamed(client: openai.AsyncOpenAI, **options: Any) -> list[Any]:
    stream = await client.chat.completions.create(model="mock", stream=True, **options)
    return [chunk async for chunk in stream]


def per_choice(chunks: list[Any]) -> dict[int, dict[str, Any]]:
    """Each choice's text, tool call pieces and finish reason, put together from its deltas."""
    seen: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            state = seen.setdefault(choice.index, {"text": "", "calls": {}, "finish": None,
                                                   "role": None})
            delta = choice.delta
            state["role"] = state["role"] or delta.role
            state["text"] += delta.content or ""
            for call in delta.tool_calls or ():
                into = state["calls"].setdefault(call.index, {"id": None, "name": None,
                                                              "arguments": ""})
                into["id"] = into["id"] or call.id
                if call.function is not None:
                    into["name"] = into["name"] or call.function.name
                    into["arguments"] += call.function.arguments or ""
            state["finish"] = choice.finish_reason or state["finish"]
    return seen


@pytest.mark.parametrize("tool_choice", [None, "auto", "required"])
def test_tools_get_a_tool_call_with_arguments_from_the_schema(run, tool_choice: str | None
                                                               ) -> None:
    async def main() -> None:
        async with sdk(config()) as client:
            options = {} if tool_choice is None else {"tool_choice": tool_choice}
            done = await client.chat.completions.create(
                model="mock", messages=MESSAGES, tools=[WEATHER, TIME], **options)
            choice = done.choices[0]
            assert choice.finish_reason == "tool_calls"
            assert choice.message.content is None
            [call] = choice.message.tool_calls or []
            assert call.type == "function" and call.id.startswith("call_")
            assert call.function.name == "weather"
            assert json.loads(call.function.arguments) == ARGUMENTS
            assert done.usage is not None and done.usage.completion_tokens > 0

    run(main())


def test_named_tool_choice_calls_that_tool_and_none_answers_text(run) -> None:
    async def main() -> None:
        async with sdk(config()) as client:
            named = await client.chat.completions.create(
                model="mock", messages=MESSAGES, tools=[WEATHER, TIME],
                tool_choice={"type": "function", "function": {"name": "time"}})
            [call] = named.choices[0].message.tool_calls or []
            assert (call.function.name, call.function.arguments) == ("time", "{}")
            text = await client.chat.completions.create(
                model="mock", messages=MESSAGES, tools=[WEATHER], tool_choice="none")
            assert text.choices[0].message.content == ANSWER
            assert text.choices[0].finish_reason == "stop"

    run(main())


@pytest.mark.parametrize("headers", [{}, BUFFERED], ids=["standard", "buffered"])
def test_streamed_tool_call_opens_with_id_and_name_then_streams_arguments(
        run, headers: dict[str, str]) -> None:
    async def main() -> None:
        async with sdk(config(), **headers) as client:
            chunks = await streamed(client, messages=MESSAGES, tools=[WEATHER],
                                    stream_options={"include_usage": True})
            first = chunks[0].choices[0].delta
            assert first.role == "assistant" and first.content is None
            [opening] = first.tool_calls or []
            assert opening.index == 0 and opening.id and opening.id.startswith("call_")
            assert opening.type == "function" and opening.function is not None
            assert (opening.function.name, opening.function.arguments) == ("weather", "")
            fragments = [c for c in chunks[1:] if c.choices and c.choices[0].delta.tool_calls]
            assert len(fragments) > 1  # the arguments arrive in pieces
            [state] = per_choice(chunks).values()
            call = state["calls"][0]
            assert json.loads(call["arguments"]) == ARGUMENTS
            assert state["finish"] == "tool_calls" and state["text"] == ""
            assert chunks[-1].choices == [] and chunks[-1].usage is not None

    run(main())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_full_tool_round_trip_ends_in_text(run, stream: bool) -> None:
    async def main() -> None:
        async with sdk(config()) as client:
            messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
            if stream:
                [state] = per_choice(await streamed(client, messages=messages,
                                                    tools=[WEATHER])).values()
                call = state["calls"][0]
                call_id, name, arguments = call["id"], call["name"], call["arguments"]
            else:
                done = await client.chat.completions.create(model="mock", messages=messages,
                                                            tools=[WEATHER])
                tool_call = (done.choices[0].message.tool_calls or [])[0]
                call_id, name = tool_call.id, tool_call.function.name
                arguments = tool_call.function.arguments
            assert name == "weather"
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": arguments}}]})
            messages.append({"role": "tool", "tool_call_id": call_id,
                             "content": json.dumps({"forecast": "sunny"})})
            if stream:
                [state] = per_choice(await streamed(client, messages=messages,
                                                    tools=[WEATHER])).values()
                assert (state["text"], state["finish"], state["calls"]) == (ANSWER, "stop", {})
            else:
                done = await client.chat.completions.create(model="mock", messages=messages,
                                                            tools=[WEATHER])
                assert done.choices[0].message.content == ANSWER
                assert done.choices[0].finish_reason == "stop"
                assert not done.choices[0].message.tool_calls

    run(main())


def test_n_gives_n_choices(run) -> None:
    async def main() -> None:
        async with sdk(config()) as client:
            done = await client.chat.completions.create(model="mock", messages=MESSAGES, n=3)
            assert [c.index for c in done.choices] == [0, 1, 2]
            assert {c.message.content for c in done.choices} == {ANSWER}
            calls = await client.chat.completions.create(model="mock", messages=MESSAGES, n=2,
                                                         tools=[WEATHER])
            ids = {(c.message.tool_calls or [])[0].id for c in calls.choices}
            assert len(ids) == 2  # every choice's call has its own id

    run(main())


@pytest.mark.parametrize("headers", [{}, BUFFERED], ids=["standard", "buffered"])
def test_streamed_n_choices_carry_their_index(run, headers: dict[str, str]) -> None:
    async def main() -> None:
        async with sdk(config(), **headers) as client:
            chunks = await streamed(client, messages=MESSAGES, n=2)
            seen = per_choice(chunks)
            assert sorted(seen) == [0, 1]
            for state in seen.values():
                assert (state["role"], state["text"], state["finish"]) == (
                    "assistant", ANSWER, "stop")
            if not headers:
                assert len(chunks) == 2 * (CHUNKS + 2)
            calls = per_choice(await streamed(client, messages=MESSAGES, n=2, tools=[WEATHER]))
            assert [json.loads(s["calls"][0]["arguments"]) for s in calls.values()] == [
                ARGUMENTS, ARGUMENTS]
            assert calls[0]["calls"][0]["id"] != calls[1]["calls"][0]["id"]

    run(main())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("options", "param"), [
    pytest.param({"n": 0}, "n", id="n-0"),
    pytest.param({"n": 129}, "n", id="n-129"),
    pytest.param({"tools": [WEATHER], "tool_choice": {"type": "function",
                                                      "function": {"name": "nope"}}},
                 "tool_choice.function.name", id="unknown-tool"),
])
def test_a_request_the_mock_cannot_answer_is_a_400(run, stream: bool, options: dict[str, Any],
                                                   param: str) -> None:
    async def main() -> None:
        async with sdk(config()) as client:
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(model="mock", messages=MESSAGES,
                                                     stream=stream, **options)
            assert info.value.param == param  # type: ignore[attr-defined]
            assert info.value.code == "invalid_value"  # type: ignore[attr-defined]
            answer = await client.chat.completions.create(model="mock", messages=MESSAGES)
            assert answer.choices[0].message.content == ANSWER  # and it keeps serving

    run(main())
