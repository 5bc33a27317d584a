"""messages_to_chat: Anthropic Message bodies → OpenAI ChatCompletion objects.

Bodies have the shape of "Messages > Create a Message" responses; finish reasons, usage and the
error mapping are checked here too.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.errors import ModelMuxError, RateLimited, ServiceUnavailable, UpstreamError
from modelmux.schemas.openai_chat import ChatCompletion
from modelmux.translate import FINISH_REASONS, finish_reason
from modelmux.translate.messages_to_chat import messages_to_chat


def body(content: list[Any], stop_reason: str | None = "end_turn", **usage: int) -> bytes:
    return json.dumps(
        {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 6, **usage},
        }
    ).encode()


def translate(raw: bytes) -> ChatCompletion:
    return messages_to_chat(raw, model="gpt-4o", completion_id="chatcmpl-1", created=1_700_000_000)


def test_text_response() -> None:
    result = translate(body([{"type": "text", "text": "Hi! My name is Claude."}]))
    assert msgspec.to_builtins(result) == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hi! My name is Claude.",
                    "tool_calls": None,
                    "refusal": None,
                },
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 6,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 0},
        },
        "system_fingerprint": None,
    }


def test_text_blocks_concatenate_and_thinking_is_dropped() -> None:
    content = [
        {"type": "thinking", "thinking": "Let me think", "signature": "EqQB"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "text", "text": "Part one, "},
        {"type": "text", "text": "part two.", "citations": [{"type": "char_location"}]},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
    ]
    message = translate(body(content)).choices[0].message
    assert message.content == "Part one, part two."
    assert message.tool_calls is None


def test_tool_use_becomes_tool_calls_with_input_passed_through() -> None:
    content = [
        {"type": "text", "text": "Let me check."},
        {
            "type": "tool_use",
            "id": "toolu_01A",
            "name": "get_weather",
            "input": {"location": "Paris", "n": [1, 2.5]},
        },
        {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
    ]
    result = translate(body(content, stop_reason="tool_use"))
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert calls is not None
    assert [(c.id, c.type, c.function.name) for c in calls] == [
        ("toolu_01A", "function", "get_weather"),
        ("toolu_01B", "function", "get_time"),
    ]
    assert json.loads(calls[0].function.arguments) == {"location": "Paris", "n": [1, 2.5]}
    assert calls[1].function.arguments == "{}"


def test_tool_calls_only_means_null_content() -> None:
    content = [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]
    assert translate(body(content, stop_reason="tool_use")).choices[0].message.content is None


def test_empty_content_is_an_empty_string() -> None:
    assert translate(body([], stop_reason="max_tokens")).choices[0].message.content == ""


def test_usage_with_prompt_caching() -> None:
    raw = body(
        [{"type": "text", "text": "x"}],
        cache_creation_input_tokens=248,
        cache_read_input_tokens=1800,
    )
    usage = translate(raw).usage
    assert usage is not None
    assert usage.prompt_tokens == 12 + 248 + 1800
    assert usage.completion_tokens == 6
    assert usage.total_tokens == 12 + 248 + 1800 + 6
    assert usage.prompt_tokens_details == {"cached_tokens": 1800, "cache_creation_tokens": 248}


def test_null_cache_counts_are_zero() -> None:
    raw = body([], cache_creation_input_tokens=None, cache_read_input_tokens=None)  # type: ignore[arg-type]
    usage = translate(raw).usage
    assert usage is not None and usage.prompt_tokens == 12


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(stop_reason: str | None, expected: str) -> None:
    assert translate(body([], stop_reason=stop_reason)).choices[0].finish_reason == expected
    assert finish_reason(stop_reason) == expected


def test_finish_reason_table_only_holds_openai_values() -> None:
    assert set(FINISH_REASONS.values()) <= {"stop", "length", "tool_calls", "content_filter"}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b'{"content": []}',
        b'{"type":"message","content":[{"text":"no type"}]}',
        b'{"type":"message","content":[{"type":"tool_use","input":{"a":"\xff"}}]}',
        b"[" * 100_000,
    ],
    ids=["empty", "truncated", "array", "no-type", "block-without-type", "bad-utf8-input", "deep"],
)
def test_unreadable_bodies_raise_upstream_error(raw: bytes) -> None:
    with pytest.raises(UpstreamError):
        translate(raw)


@pytest.mark.parametrize(
    ("error_type", "exc", "code"),
    [
        ("overloaded_error", ServiceUnavailable, "overloaded"),
        ("rate_limit_error", RateLimited, "rate_limit_exceeded"),
    ],
)
def test_error_bodies_raise_the_mapped_error(
    error_type: str, exc: type[ModelMuxError], code: str
) -> None:
    raw = json.dumps(
        {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}
    ).encode()
    with pytest.raises(exc) as info:
        translate(raw)
    assert info.value.code == code and str(info.value) == "Overloaded"


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_blocks = st.lists(
    st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=30)}),
        st.fixed_dictionaries(
            {
                "type": st.just("tool_use"),
                "id": st.text(min_size=1, max_size=10),
                "name": st.text(min_size=1, max_size=10),
                "input": st.dictionaries(st.text(max_size=5), _json_value, max_size=4),
            }
        ),
        st.fixed_dictionaries({"type": st.just("thinking"), "thinking": st.text(max_size=10)}),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(_blocks, st.integers(0, 10**6), st.integers(0, 10**6))
def test_property_blocks_survive(content: list[dict[str, Any]], read: int, out: int) -> None:
    raw = json.dumps(
        {
            "type": "message",
            "content": content,
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "cache_read_input_tokens": read, "output_tokens": out},
        }
    )
    result = translate(raw.encode())
    message = result.choices[0].message
    texts = [b["text"] for b in content if b["type"] == "text"]
    tools = [b for b in content if b["type"] == "tool_use"]
    assert message.content == ("".join(texts) if texts or not tools else None)
    calls = message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [(t["id"], t["name"]) for t in tools]
    assert [json.loads(c.function.arguments) for c in calls] == [t["input"] for t in tools]
    assert result.usage is not None and result.usage.prompt_tokens == 3 + read
    assert result.usage.total_tokens == 3 + read + out
