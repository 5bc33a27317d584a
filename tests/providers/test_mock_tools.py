"""What the mock answers: the ``tool_choice`` rules, ``n`` bounds, arguments from a JSON schema."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from modelmux.errors import InvalidRequest
from modelmux.providers.mock_tools import choice_count, example_arguments, tool_to_call
from modelmux.schemas.openai_chat import ChatCompletionRequest

WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "time"}}
USER = {"role": "user", "content": "hi"}
CALLED = {"role": "assistant", "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}
ANSWERED = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def request(messages: list[dict[str, Any]] | None = None, **fields: Any) -> ChatCompletionRequest:
    body = {"model": "mock", "messages": messages or [USER], **fields}
    return msgspec.json.decode(json.dumps(body).encode(), type=ChatCompletionRequest)


def called(**fields: Any) -> str | None:
    messages = fields.pop("messages", None)
    function = tool_to_call(request(messages, **fields))
    return None if function is None else function.name


def test_tools_without_tool_choice_call_the_first_tool() -> None:
    assert called(tools=[WEATHER, TIME]) == "weather"
    assert called(tools=[WEATHER, TIME], tool_choice="auto") == "weather"
    assert called(tools=[WEATHER, TIME], tool_choice="required") == "weather"


def test_named_tool_choice_calls_that_tool() -> None:
    choice = {"type": "function", "function": {"name": "time"}}
    assert called(tools=[WEATHER, TIME], tool_choice=choice) == "time"


def test_no_tools_or_tool_choice_none_answers_text() -> None:
    assert called() is None
    assert called(tools=[WEATHER], tool_choice="none") is None
    assert called(tools=[{"type": "custom"}]) is None  # only function tools are called


def test_a_tool_result_last_gets_text_unless_a_tool_is_forced() -> None:
    conversation = [USER, CALLED, ANSWERED]
    assert called(messages=conversation, tools=[WEATHER]) is None
    assert called(messages=conversation, tools=[WEATHER], tool_choice="auto") is None
    assert called(messages=conversation, tools=[WEATHER], tool_choice="required") == "weather"
    assert called(messages=[*conversation, USER], tools=[WEATHER]) == "weather"


@pytest.mark.parametrize(("fields", "param"), [
    pytest.param({"tools": [WEATHER], "tool_choice": {"type": "function",
                                                      "function": {"name": "nope"}}},
                 "tool_choice.function.name", id="unknown-name"),
    pytest.param({"tool_choice": {"type": "function", "function": {"name": "weather"}}},
                 "tool_choice.function.name", id="named-without-tools"),
    pytest.param({"tool_choice": "required"}, "tool_choice", id="required-without-tools"),
    pytest.param({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice",
                 id="unknown-mode"),
])
def test_impossible_tool_choice_is_a_400_naming_the_param(fields: dict[str, Any],
                                                         param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        tool_to_call(request(**fields))
    assert info.value.param == param


@pytest.mark.parametrize(("n", "count"), [(None, 1), (1, 1), (3, 3), (128, 128)])
def test_choice_count(n: int | None, count: int) -> None:
    assert choice_count(request(**({} if n is None else {"n": n}))) == count


@pytest.mark.parametrize("n", [0, -1, 129])
def test_n_out_of_range_is_a_400_naming_n(n: int) -> None:
    with pytest.raises(InvalidRequest) as info:
        choice_count(request(n=n))
    assert info.value.param == "n"


def test_arguments_give_each_required_property_an_example_of_its_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1},
            "lat": {"type": "number"},
            "exact": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "pair": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
            "where": {"type": "object", "properties": {"zip": {"type": "string"},
                                                       "note": {"type": "string"}},
                      "required": ["zip"]},
            "mode": {"type": "string", "default": "fast"},
            "kind": {"const": "weather"},
            "maybe": {"type": ["null", "integer"]},
            "optional": {"type": "string"},
        },
        "required": ["city", "unit", "days", "lat", "exact", "tags", "pair", "where", "mode",
                     "kind", "maybe"],
    }
    assert example_arguments(schema) == {
        "city": "mock", "unit": "celsius", "days": 1, "lat": 0, "exact": False, "tags": [],
        "pair": [0, 0], "where": {"zip": "mock"}, "mode": "fast", "kind": "weather", "maybe": 0,
    }


def test_arguments_follow_refs_and_first_alternatives() -> None:
    schema = {
        "type": "object",
        "$defs": {"place": {"type": "object", "properties": {"name": {"type": "string"}},
                            "required": ["name"]}},
        "properties": {"to": {"$ref": "#/$defs/place"},
                       "via": {"anyOf": [{"type": "integer"}, {"type": "string"}]}},
        "required": ["to", "via"],
    }
    assert example_arguments(schema) == {"to": {"name": "mock"}, "via": 0}


def test_no_parameters_is_an_empty_object() -> None:
    assert example_arguments(None) == {}
    assert example_arguments({"type": "object"}) == {}


def test_a_recursive_schema_ends_with_a_bounded_answer() -> None:
    node = {"type": "object", "properties": {"left": {"$ref": "#"}, "right": {"$ref": "#/$defs/n"}},
            "required": ["left", "right"]}
    schema = {**node, "$defs": {"n": node}}
    arguments = example_arguments(schema)
    assert set(arguments) == {"left", "right"}
    assert len(json.dumps(arguments)) < 2_000_000
