"""chat_to_messages: OpenAI chat requests → Anthropic Messages request bodies.

Requests are decoded from JSON the way the API layer does; every body must encode with msgspec.
The property at the end checks turn shape on arbitrary conversations.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    FunctionCall,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
    request_decoder,
)
from modelmux.translate.chat_to_messages import LEADING_USER_TEXT, chat_to_messages

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
TOOLS = [{"type": "function", "function": {"name": "now"}}]


def text(t: str) -> dict[str, str]:
    return {"type": "text", "text": t}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any = None, **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, **fields}


def call(call_id: str, name: str = "f", arguments: str = "{}") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def req(messages: list[Any] | None = None, **fields: Any) -> ChatCompletionRequest:
    payload = {"model": "gpt-4o", "messages": messages or [user("Hi")], **fields}
    return request_decoder.decode(msgspec.json.encode(payload))


def translate(messages: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    body = chat_to_messages(req(messages, **fields), model="claude-sonnet-4-5")
    msgspec.json.encode(body)
    return body


def rejected(messages: list[Any] | None = None, **fields: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        translate(messages, **fields)
    assert info.value.status == 400
    return info.value


def test_minimal_request() -> None:
    assert translate() == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [text("Hi")]}],
    }


def test_model_omitted_for_vertex_and_stream_flag() -> None:
    body = chat_to_messages(req(stream=True), model=None, default_max_tokens=1000)
    assert "model" not in body and body["stream"] is True and body["max_tokens"] == 1000
    assert "stream" not in translate(stream=False)


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert translate(max_tokens=100)["max_tokens"] == 100
    assert translate(max_tokens=100, max_completion_tokens=200)["max_tokens"] == 200
    assert rejected(max_completion_tokens=0).param == "max_completion_tokens"


def test_system_and_developer_messages_become_system() -> None:
    one = translate([{"role": "system", "content": "Be brief."}, user("Hi")])
    assert one["system"] == "Be brief."
    several = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [text("Use French.")]},
        user("Hi"),
        {"role": "system", "content": "   "},
    ]
    body = translate(several)
    assert body["system"] == [text("Be brief."), text("Use French.")]
    assert [t["role"] for t in body["messages"]] == ["user"]


def test_consecutive_same_role_messages_merge() -> None:
    body = translate(
        [user("one"), user([text("two")]), assistant("three"), assistant([text("four")]), user("5")]
    )
    assert body["messages"] == [
        {"role": "user", "content": [text("one"), text("two")]},
        {"role": "assistant", "content": [text("three"), text("four")]},
        {"role": "user", "content": [text("5")]},
    ]


def test_images_data_and_https_urls() -> None:
    data_url = {"url": f"data:image/png;base64,{PNG}", "detail": "low"}
    parts = [
        text("Compare"),
        {"type": "image_url", "image_url": data_url},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    assert translate([user(parts)])["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "cat.png",
        "data:image/png,AAAA",
        "data:image/bmp;base64,AAAA",
        "data:image/png;base64,",
    ],
)
def test_bad_image_urls_are_rejected_naming_the_param(url: str) -> None:
    image = {"type": "image_url", "image_url": {"url": url}}
    messages = [{"role": "system", "content": "s"}, assistant("a"), user([text("x"), image])]
    assert rejected(messages).param == "messages[2].content[1].image_url.url"


def test_files_and_audio() -> None:
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}
    assert translate([user([pdf])])["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        }
    ]
    file_id = {"type": "file", "file": {"file_id": "file-abc"}}
    assert rejected([user([file_id])]).param == "messages[0].content[0].file.file_id"
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    assert rejected([user([audio])]).param == "messages[0].content[0]"


def test_tools() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    weather = {
        "name": "get_weather",
        "description": "Weather",
        "strict": True,
        "parameters": schema,
    }
    body = translate(tools=[{"type": "function", "function": weather}, *TOOLS])
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather", "input_schema": schema},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body
    assert rejected(tools=[{"type": "code_interpreter"}]).param == "tools[0].type"


NAMED = {"type": "function", "function": {"name": "now"}}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (NAMED, None, {"type": "tool", "name": "now"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (NAMED, False, {"type": "tool", "name": "now", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, True, None),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    body = translate(tools=TOOLS, tool_choice=choice, parallel_tool_calls=parallel)
    assert body.get("tool_choice") == expected


def test_bad_tool_choices() -> None:
    later = {"type": "function", "function": {"name": "later"}}
    assert rejected(tools=TOOLS, tool_choice=later).param == "tool_choice.function.name"
    assert rejected(tools=TOOLS, tool_choice="sometimes").param == "tool_choice"
    assert rejected(tool_choice="required").param == "tool_choice"
    assert "tool_choice" not in translate(tool_choice="none", parallel_tool_calls=False)


def test_tool_round_trip_groups_results_into_one_user_turn() -> None:
    calls = [call("call_1", "get_weather", '{"city": "Paris"}'), call("call_2", "now", "")]
    body = translate(
        [
            user("Weather and time?"),
            assistant("", tool_calls=calls),
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [text("noon")]},
            user("Thanks, and tomorrow?"),
        ]
    )
    tool_use = {"type": "tool_use", "id": "call_1", "name": "get_weather"}
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {**tool_use, "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [text("noon")]},
                text("Thanks, and tomorrow?"),
            ],
        },
    ]


def test_tool_results_come_first_and_empty_results_have_no_content() -> None:
    messages = [
        user("go"),
        assistant(tool_calls=[call("c")]),
        user("note"),
        {"role": "tool", "tool_call_id": "c", "content": ""},
    ]
    assert translate(messages)["messages"][-1]["content"] == [
        {"type": "tool_result", "tool_use_id": "c"},
        text("note"),
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"', "[" * 100_000])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    messages = [user("go"), assistant(tool_calls=[call("c", arguments=arguments)])]
    assert rejected(messages).param == "messages[1].tool_calls[0].function.arguments"
    other_type = {**call("c"), "type": "custom"}
    assert rejected([user("go"), assistant(tool_calls=[other_type])]).param == (
        "messages[1].tool_calls[0].type"
    )


def test_empty_assistant_content_never_makes_an_empty_block() -> None:
    messages = [user("a"), assistant(""), assistant([text(" ")]), assistant(None), user("b")]
    assert translate(messages)["messages"] == [{"role": "user", "content": [text("a"), text("b")]}]


def test_conversation_starting_with_assistant_gets_a_leading_user_turn() -> None:
    body = translate([{"role": "system", "content": "s"}, assistant("Hello!"), user("Hi")])
    assert body["messages"][0] == {"role": "user", "content": [text(LEADING_USER_TEXT)]}
    assert body["messages"][1]["role"] == "assistant"


def test_final_assistant_prefill_loses_trailing_whitespace() -> None:
    body = translate([user("JSON please"), assistant("{ \n")])
    assert body["messages"][-1] == {"role": "assistant", "content": [text("{")]}


def test_assistant_refusal_is_kept_as_text() -> None:
    body = translate([user("x"), assistant(refusal="I can't."), user("ok")])
    assert body["messages"][1]["content"] == [text("I can't.")]


def test_sampling_fields() -> None:
    body = translate(temperature=0.7, top_p=0.9, stop="END", user="user-123")
    assert (body["temperature"], body["top_p"], body["stop_sequences"]) == (0.7, 0.9, ["END"])
    assert body["metadata"] == {"user_id": "user-123"}
    assert translate(stop=["a", "", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in translate(stop=[])
    assert rejected(temperature=1.5).param == "temperature"
    assert rejected(temperature=-0.1).param == "temperature"
    assert rejected(top_p=2).param == "top_p"


DROPPED = (
    b'{"presence_penalty": 0.5, "frequency_penalty": 0.5, "seed": 7, "service_tier": "auto",'
    b' "store": true, "metadata": {"k": "v"}, "reasoning_effort": "high", "logprobs": false,'
    b' "top_logprobs": 0, "logit_bias": {}, "n": 1, "response_format": {"type": "text"},'
    b' "modalities": ["text"], "prediction": {"type": "content", "content": "x"},'
    b' "stream_options": {"include_usage": true}, "user": ""}'
)


def test_dropped_fields_leave_no_trace() -> None:
    dropped: dict[str, Any] = msgspec.json.decode(DROPPED)
    assert translate(**dropped) == translate()


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
        ),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "modalities"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"web_search_options": {}}, "web_search_options"),
    ],
)
def test_unsupported_fields_are_rejected(fields: dict[str, Any], param: str) -> None:
    assert rejected(**fields).param == param


def test_conversations_without_turns_and_legacy_functions_are_rejected() -> None:
    assert rejected([{"role": "system", "content": "s"}]).param == "messages"
    assert rejected([user(" ")]).param == "messages"
    function = {"role": "function", "name": "f", "content": "1"}
    assert rejected([user("x"), function]).param == "messages[1]"
    legacy_call = assistant(function_call={"name": "f", "arguments": "{}"})
    assert rejected([user("x"), legacy_call]).param == "messages[1]"


_texts = st.sampled_from(["", " ", "\n", "hi", "two words", " padded "]) | st.text(max_size=12)
_content = _texts | st.lists(_texts.map(lambda t: TextPart(text=t)), max_size=3)
_call = st.builds(
    lambda i, args: ToolCall(id=f"call_{i}", function=FunctionCall(name="f", arguments=args)),
    st.integers(0, 99),
    st.sampled_from(["", "{}", '{"a": 1}', ' {"b": [true, null]} ']),
)
_message: st.SearchStrategy[Message] = st.one_of(
    st.builds(SystemMessage, content=_content),
    st.builds(DeveloperMessage, content=_content),
    st.builds(UserMessage, content=_content),
    st.builds(
        AssistantMessage,
        content=st.none() | _content,
        tool_calls=st.none() | st.lists(_call, max_size=2),
    ),
    st.builds(ToolMessage, content=_content, tool_call_id=st.sampled_from(["call_1", "call_2"])),
)


def _non_blank(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content.strip() else []
    return [p.text for p in content if p.text.strip()]


@settings(max_examples=200, deadline=None)
@given(st.lists(_message, max_size=10))
def test_property_turns_alternate_from_user_with_no_blank_text(messages: list[Message]) -> None:
    is_system = [isinstance(m, (SystemMessage, DeveloperMessage)) for m in messages]
    try:
        body = chat_to_messages(ChatCompletionRequest(model="m", messages=messages), model=None)
    except InvalidRequest as exc:
        assert exc.param == "messages"
        assert not any(
            _non_blank(m.content) or getattr(m, "tool_calls", None) or isinstance(m, ToolMessage)
            for m, system in zip(messages, is_system)
            if not system
        )
        return
    turns = body["messages"]
    assert turns[0]["role"] == "user"
    assert all(a["role"] != b["role"] for a, b in itertools.pairwise(turns))
    assert all(t["content"] for t in turns)
    blocks = [b for t in turns for b in t["content"]]
    assert all(b["text"].strip() for b in blocks if b["type"] == "text")
    assert all(b.get("content", "x") for b in blocks if b["type"] == "tool_result")
    for turn in turns:
        leading = [b["type"] == "tool_result" for b in turn["content"]]
        assert leading == sorted(leading, reverse=True), "tool_result blocks lead their turn"
    calls = sum(len(getattr(m, "tool_calls", None) or []) for m in messages)
    assert sum(b["type"] == "tool_use" for b in blocks) == calls
    results = sum(isinstance(m, ToolMessage) for m in messages)
    assert sum(b["type"] == "tool_result" for b in blocks) == results
    system_texts = [t for m, s in zip(messages, is_system) if s for t in _non_blank(m.content)]
    system = body.get("system", [])
    assert ([system] if isinstance(system, str) else [b["text"] for b in system]) == system_texts
    msgspec.json.encode(body)
