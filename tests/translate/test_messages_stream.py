"""MessagesStreamTranslator: golden Anthropic SSE transcripts and edge cases.

The transcripts and chunk readers live in ``tests/translate/__init__.py``. Every test runs on
both twins (pure and native, ``messages_twin``); the properties and the twin-equality checks
are in ``test_messages_stream_properties``.
"""

from __future__ import annotations

import json

import msgspec
import pytest

from modelmux.schemas.openai_chat import ChatCompletionChunk
from tests.translate import (
    BASIC_TEXT,
    OVERLOADED_MID_STREAM,
    PARALLEL_TOOLS,
    THINKING,
    TOOL_USE,
    Event,
    content_of,
    finish_reasons,
    new,
    parse_sse,
    run,
    tool_calls_of,
)

pytestmark = pytest.mark.usefixtures("messages_twin")


def test_basic_text_exact_payloads() -> None:
    translator = new()
    out = [p for e, d in parse_sse(BASIC_TEXT) for p in translator.feed(e, d)]
    head = b'{"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":'
    tail = b',"finish_reason":null,"logprobs":null}]}'
    assert out == [
        head + b'{"role":"assistant","content":""}' + tail,
        head + b'{"content":"Hello"}' + tail,
        head + b'{"content":"!"}' + tail,
        head + b'{},"finish_reason":"stop","logprobs":null}]}',
    ]
    assert translator.done and not translator.failed
    assert translator.close() == []
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (25, 15)


@pytest.mark.parametrize("transcript", [BASIC_TEXT, TOOL_USE, PARALLEL_TOOLS, THINKING])
def test_every_chunk_is_a_chat_completion_chunk_of_one_response(transcript: str) -> None:
    chunks = run(parse_sse(transcript), include_usage=True)
    for chunk in chunks:
        decoded = msgspec.convert(chunk, ChatCompletionChunk)
        assert (decoded.id, decoded.created, decoded.model) == (
            "chatcmpl-abc",
            1_700_000_000,
            "gpt-4o",
        )
        assert chunk["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(finish_reasons(chunks)) == 1
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]
    assert all("usage" not in c for c in chunks[:-1])


def test_tool_use_with_arguments_split_mid_token() -> None:
    chunks = run(parse_sse(TOOL_USE))
    assert content_of(chunks) == "Okay, let's check the weather for San Francisco, CA:"
    assert tool_calls_of(chunks) == {
        0: {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "arguments": '{"location": "San Francisco, CA", "unit": "fahrenheit"}',
        }
    }
    start = next(c for c in chunks if "tool_calls" in c["choices"][0]["delta"])
    assert start["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
    ]
    assert finish_reasons(chunks) == ["tool_calls"]


def test_parallel_tool_calls_get_their_own_indexes() -> None:
    chunks = run(parse_sse(PARALLEL_TOOLS))
    calls = tool_calls_of(chunks)
    assert calls == {
        0: {"id": "toolu_A", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "toolu_B", "name": "get_time", "arguments": '{"tz": "Europe/Paris"}'},
    }
    assert content_of(chunks) == ""


def test_thinking_blocks_are_dropped_and_text_index_is_not_the_block_index() -> None:
    chunks = run(parse_sse(THINKING))
    assert content_of(chunks) == "27 * 453 = 12,231"
    assert "thinking" not in json.dumps(chunks) and "signature" not in json.dumps(chunks)
    assert finish_reasons(chunks) == ["stop"]


def test_overloaded_error_mid_stream_becomes_one_error_payload() -> None:
    translator = new(include_usage=True)
    out = [
        json.loads(p) for e, d in parse_sse(OVERLOADED_MID_STREAM) for p in translator.feed(e, d)
    ]
    assert content_of(out[:-1]) == "Once upon"
    assert out[-1] == {
        "error": {
            "message": "Overloaded",
            "type": "server_error",
            "code": "overloaded",
            "param": None,
        }
    }
    assert translator.failed and not translator.done
    assert translator.feed("content_block_delta", b'{"type":"content_block_delta"}') == []
    assert translator.close() == []


@pytest.mark.parametrize(
    ("error_type", "type_", "code"),
    [
        ("rate_limit_error", "rate_limit_error", "rate_limit_exceeded"),
        ("api_error", "upstream_error", "upstream_api_error"),
        ("overloaded_error", "server_error", "overloaded"),
        ("invalid_request_error", "invalid_request_error", "invalid_request"),
        ("something_new", "upstream_error", "bad_gateway"),
    ],
)
def test_error_event_types_are_mapped(error_type: str, type_: str, code: str) -> None:
    data = json.dumps({"type": "error", "error": {"type": error_type, "message": "m"}}).encode()
    (payload,) = run([("error", data)])
    assert payload["error"]["type"] == type_ and payload["error"]["code"] == code


def test_usage_sums_cache_tokens_into_prompt_tokens() -> None:
    chunks = run(parse_sse(TOOL_USE), include_usage=True)
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 472 + 100 + 2048,
        "completion_tokens": 89,
        "total_tokens": 472 + 100 + 2048 + 89,
        "prompt_tokens_details": {"cached_tokens": 2048, "cache_creation_tokens": 100},
    }


def test_message_delta_usage_is_cumulative_and_overrides_start_counts() -> None:
    events = parse_sse(BASIC_TEXT)
    events[6] = (
        "message_delta",
        (
            b'{"type":"message_delta","delta":{"stop_reason":"max_tokens"},'
            b'"usage":{"input_tokens":30,"cache_read_input_tokens":5,"output_tokens":20}}'
        ),
    )
    translator = new(include_usage=True)
    chunks = [json.loads(p) for e, d in events for p in translator.feed(e, d)]
    assert finish_reasons(chunks) == ["length"]
    assert chunks[-1]["usage"]["prompt_tokens"] == 35
    assert chunks[-1]["usage"]["completion_tokens"] == 20
    assert translator.usage is not None and translator.usage.total_tokens == 55


def test_no_usage_chunk_without_include_usage() -> None:
    chunks = run(parse_sse(BASIC_TEXT), include_usage=False)
    assert all(c["choices"] for c in chunks)


def test_close_before_message_stop_reports_truncation() -> None:
    translator = new()
    for event, data in parse_sse(BASIC_TEXT)[:4]:
        translator.feed(event, data)
    (payload,) = translator.close()
    assert json.loads(payload)["error"]["code"] == "upstream_stream_truncated"
    assert translator.failed and translator.close() == []


def test_close_of_an_empty_stream_reports_truncation() -> None:
    assert run([])[0]["error"]["code"] == "upstream_stream_truncated"


@pytest.mark.parametrize(
    "events",
    [
        [("message_start", b"{not json")],
        [
            ("message_start", b'{"type":"message_start","message":{}}'),
            ("content_block_delta", b"["),
        ],
        [
            (
                "content_block_delta",
                b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}',
            )
        ],
        [("message_start", b'{"message":{}}'), ("message_start", b'{"message":{}}')],
        [("message_start", b'{"message":{}}'), ("content_block_stop", b'{"index":3}')],
        [
            ("message_start", b'{"message":{}}'),
            ("content_block_delta", b'{"index":0,"delta":{"type":"text_delta","text":"x"}}'),
        ],
        [("message_start", b'{"message":{}}'), ("", b"\xff\xfe")],
        [("message_start", b'{"message":{"usage":{"input_tokens":"many"}}}')],
        [
            ("message_start", b'{"message":{}}'),
            ("content_block_start", b'{"index":0,"content_block":{"type":"text","text":"\xff"}}'),
        ],
    ],
    ids=[
        "bad-json",
        "truncated-json",
        "delta-before-start",
        "second-start",
        "stop-unknown-block",
        "delta-unknown-block",
        "bad-utf8-unnamed",
        "wrong-type",
        "bad-utf8-string",
    ],
)
def test_broken_streams_end_in_one_protocol_error(events: list[Event]) -> None:
    translator = new()
    out = [p for e, d in events for p in translator.feed(e, d)]
    assert translator.failed
    error = json.loads(out[-1])["error"]
    assert error["code"] == "upstream_protocol_error" and error["type"] == "upstream_error"
    assert all("error" not in json.loads(p) for p in out[:-1])


def test_unknown_events_are_skipped_and_missing_event_names_use_the_data_type() -> None:
    events = [("", data) for _, data in parse_sse(BASIC_TEXT)]
    events.insert(3, ("future_event", b'{"type":"future_event","x":1}'))
    chunks = run(events)
    assert content_of(chunks) == "Hello!" and finish_reasons(chunks) == ["stop"]


def test_events_after_message_stop_are_ignored() -> None:
    translator = new()
    for event, data in parse_sse(BASIC_TEXT):
        translator.feed(event, data)
    assert translator.feed("content_block_delta", b"garbage") == []
    assert translator.done and not translator.failed


def test_message_stop_without_message_delta_still_finishes() -> None:
    events = [e for e in parse_sse(BASIC_TEXT) if e[0] != "message_delta"]
    assert finish_reasons(run(events)) == ["stop"]


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("refusal", "content_filter"),
        ("max_tokens", "length"),
        ("pause_turn", "stop"),
        ("stop_sequence", "stop"),
        ("brand_new", "stop"),
    ],
)
def test_stop_reasons_in_stream(stop_reason: str, expected: str) -> None:
    events = parse_sse(BASIC_TEXT)
    events[6] = ("message_delta", json.dumps({"delta": {"stop_reason": stop_reason}}).encode())
    assert finish_reasons(run(events)) == [expected]


def test_tool_input_given_whole_in_block_start_is_sent_at_block_stop() -> None:
    events = parse_sse(BASIC_TEXT)[:1] + [
        (
            "content_block_start",
            b'{"index":0,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{"a":[1,2]}}}',
        ),
        ("content_block_stop", b'{"index":0}'),
        ("message_delta", b'{"delta":{"stop_reason":"tool_use"}}'),
        ("message_stop", b"{}"),
    ]
    assert tool_calls_of(run(events)) == {0: {"id": "t1", "name": "f", "arguments": '{"a":[1,2]}'}}


def test_text_with_json_specials_round_trips() -> None:
    text = 'quote " backslash \\ newline \n tab \t unicode é 𝄞 \u2028 <script>'
    delta = json.dumps({"index": 0, "delta": {"type": "text_delta", "text": text}}).encode()
    events = parse_sse(BASIC_TEXT)
    events[3] = ("content_block_delta", delta)
    events[4] = ("content_block_delta", b'{"index":0,"delta":{"type":"text_delta","text":""}}')
    chunks = run(events)
    assert content_of(chunks) == text
    assert len(chunks) == 3  # role, one text delta (the empty one is skipped), finish
