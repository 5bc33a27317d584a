"""pytest-benchmark: the OpenAI ⇄ Anthropic translators on their hot paths.

Run: ``python -m pytest benchmarks/test_bench_translate.py`` (testpaths leave benchmarks out of
the default run). Per-chunk numbers feed one delta to a live translator; stream numbers include
building the translator and every event of a realistic stream. The stream translator's numbers
are taken for both twins (``py`` and ``native``).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from modelmux.schemas.openai_chat import request_decoder
from modelmux.translate import MessagesStreamTranslator, chat_to_messages, messages_to_chat
from tests.twins import import_twin, twin_params

Event = tuple[str, bytes]

pytest.importorskip("pytest_benchmark")


def _ev(name: str, **body: Any) -> Event:
    return name, json.dumps({"type": name, **body}).encode()


def _start() -> list[Event]:
    usage = {"input_tokens": 1200, "cache_read_input_tokens": 800, "output_tokens": 1}
    return [
        _ev(
            "message_start",
            message={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude",
                "usage": usage,
            },
        )
    ]


def _end(stop_reason: str) -> list[Event]:
    return [
        _ev("message_delta", delta={"stop_reason": stop_reason}, usage={"output_tokens": 300}),
        _ev("message_stop"),
    ]


def text_delta(i: int) -> Event:
    return _ev(
        "content_block_delta", index=0, delta={"type": "text_delta", "text": f" word{i}, and"}
    )


def args_delta(block: int, i: int) -> Event:
    piece = '{"query": "' if i == 0 else f"fragment {i} "
    return _ev(
        "content_block_delta",
        index=block,
        delta={"type": "input_json_delta", "partial_json": piece},
    )


TEXT_STREAM = (
    _start()
    + [_ev("content_block_start", index=0, content_block={"type": "text", "text": ""})]
    + [text_delta(i) for i in range(100)]
    + [_ev("content_block_stop", index=0)]
    + _end("end_turn")
)

TOOL_STREAM = _start()
for _block in range(2):
    TOOL_STREAM += [
        _ev(
            "content_block_start",
            index=_block,
            content_block={
                "type": "tool_use",
                "id": f"toolu_{_block}",
                "name": "search",
                "input": {},
            },
        )
    ]
    TOOL_STREAM += [args_delta(_block, i) for i in range(50)]
    TOOL_STREAM += [
        _ev(
            "content_block_delta",
            index=_block,
            delta={"type": "input_json_delta", "partial_json": '"}'},
        ),
        _ev("content_block_stop", index=_block),
    ]
TOOL_STREAM += _end("tool_use")

TYPICAL_REQUEST = msgspec.json.encode(
    {
        "model": "gpt-4o",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 1024,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. " * 20},
            {"role": "user", "content": "What's the weather in Paris and Berlin?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{c}",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps({"city": c})},
                    }
                    for c in ("Paris", "Berlin")
                ],
            },
            {"role": "tool", "tool_call_id": "call_Paris", "content": "18C, clear"},
            {"role": "tool", "tool_call_id": "call_Berlin", "content": "12C, rain"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Thanks. And what is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/photo.jpg"}},
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            },
        ],
    }
)

RESPONSE = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "text", "text": "word " * 300},
            {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "x" * 100}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1200, "cache_read_input_tokens": 800, "output_tokens": 300},
    }
).encode()


@pytest.fixture(params=twin_params("messages_stream", "modelmux.translate.messages_stream"))
def twin(request: pytest.FixtureRequest) -> type[MessagesStreamTranslator]:
    cls: type[MessagesStreamTranslator] = import_twin(request.param).MessagesStreamTranslator
    return cls


def _translator(cls: type[MessagesStreamTranslator]) -> MessagesStreamTranslator:
    return cls(model="gpt-4o", completion_id="chatcmpl-1", created=1, include_usage=True)


def _run_stream(cls: type[MessagesStreamTranslator], events: list[Event]) -> int:
    translator = _translator(cls)
    n = 0
    for event, data in events:
        n += len(translator.feed(event, data))
    assert translator.done
    return n


def test_text_stream_100_deltas(benchmark: Any, twin: type[MessagesStreamTranslator]) -> None:
    assert benchmark(_run_stream, twin, TEXT_STREAM) == 103


def test_tool_call_stream_two_calls(benchmark: Any, twin: type[MessagesStreamTranslator]) -> None:
    assert benchmark(_run_stream, twin, TOOL_STREAM) == 107


def _live(cls: type[MessagesStreamTranslator], events: list[Event]) -> MessagesStreamTranslator:
    translator = _translator(cls)
    for event, data in events:
        translator.feed(event, data)
    return translator


def test_text_delta_per_chunk(benchmark: Any, twin: type[MessagesStreamTranslator]) -> None:
    translator = _live(twin, TEXT_STREAM[:2])
    event, data = text_delta(7)
    assert len(benchmark(translator.feed, event, data)) == 1


def test_arguments_delta_per_chunk(benchmark: Any, twin: type[MessagesStreamTranslator]) -> None:
    translator = _live(twin, TOOL_STREAM[:2])
    event, data = args_delta(0, 7)
    assert len(benchmark(translator.feed, event, data)) == 1


def test_typical_request(benchmark: Any) -> None:
    request = request_decoder.decode(TYPICAL_REQUEST)
    body = benchmark(chat_to_messages, request, model="claude-sonnet-4-5")
    assert len(body["messages"]) == 3


def test_typical_request_decode_translate_encode(benchmark: Any) -> None:
    def run() -> bytes:
        request = request_decoder.decode(TYPICAL_REQUEST)
        return msgspec.json.encode(chat_to_messages(request, model="claude-sonnet-4-5"))

    assert benchmark(run).startswith(b'{"model"')


def test_non_streaming_response(benchmark: Any) -> None:
    result = benchmark(messages_to_chat, RESPONSE, model="gpt-4o", completion_id="c", created=1)
    assert result.choices[0].finish_reason == "tool_calls"
