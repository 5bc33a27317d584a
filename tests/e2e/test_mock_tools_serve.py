"""``modelmux serve`` with the mock as a model with tools: a demo's tool loop through the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.proc import ServeProcess, serve_config

CONFIG = """
[[provider]]
name = "demo"
type = "mock"
models = ["mock", "acme/tool-model"]
text = "It is sunny."
chunks = 4
"""
WEATHER: Any = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    home: Path = tmp_path_factory.mktemp("home")
    proc: ServeProcess = serve_config(home, CONFIG)
    try:
        with openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0,
                           timeout=10) as sdk:
            yield sdk
    finally:
        assert proc.stop() == 0


def answer_tools(messages: list[Any], calls: list[Any]) -> None:
    """What a demo does with the model's tool calls: run each, append call and result."""
    messages.append({"role": "assistant", "content": None, "tool_calls": calls})
    for call in calls:
        city = json.loads(call["function"]["arguments"])["city"]
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": f"sun in {city}"})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_demo_tool_loop_ends_after_one_call(client: openai.OpenAI, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather?"}]
    turns = []
    for _ in range(4):  # bounded: the mock answers text once the tool has answered
        if stream:
            calls: dict[int, Any] = {}
            text, finish = "", None
            for chunk in client.chat.completions.create(model="acme/tool-model", stream=True,
                                                        messages=messages, tools=[WEATHER]):
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    finish = choice.finish_reason or finish
                    for delta in choice.delta.tool_calls or ():
                        call = calls.setdefault(delta.index, {
                            "id": delta.id, "type": "function",
                            "function": {"name": "", "arguments": ""}})
                        if delta.function is not None:
                            call["function"]["name"] += delta.function.name or ""
                            call["function"]["arguments"] += delta.function.arguments or ""
            found = list(calls.values())
        else:
            done = client.chat.completions.create(model="acme/tool-model", messages=messages,
                                                  tools=[WEATHER])
            text, finish = done.choices[0].message.content or "", done.choices[0].finish_reason
            found = [c.model_dump() for c in done.choices[0].message.tool_calls or ()]
        turns.append(finish)
        if finish != "tool_calls":
            break
        assert [c["function"]["name"] for c in found] == ["weather"]
        answer_tools(messages, found)
    assert turns == ["tool_calls", "stop"]
    assert text == "It is sunny."
    assert messages[-1] == {"role": "tool", "tool_call_id": messages[-2]["tool_calls"][0]["id"],
                            "content": "sun in mock"}


def test_models_retrieve_takes_an_id_with_a_slash(client: openai.OpenAI) -> None:
    model = client.models.retrieve("acme/tool-model")
    assert (model.id, model.object, model.owned_by) == ("acme/tool-model", "model", "demo")
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("acme/other")
    assert info.value.code == "model_not_found"  # type: ignore[attr-defined]
