"""``MessagesEventStream``: OpenAI chunks in, Anthropic's event order out, whatever the cuts."""

from __future__ import annotations

import json
from typing import Any

import anthropic
from anthropic.types import RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from modelmux.translate.messages_events import MessagesEventStream
from tests.messages.helpers import events

_EVENT = TypeAdapter(RawMessageStreamEvent)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, int] | None = None) -> bytes:
    doc: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 0,
                           "model": "m", "choices": []}
    if delta is not None:
        doc["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage is not None:
        doc["usage"] = usage
    return json.dumps(doc).encode()


TOOL_ANSWER = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me "}),
    chunk({"content": "check."}),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "get_weather", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                           "function": {"name": "get_time", "arguments": "{}"}}]}),
    chunk({}, "tool_calls"),
    chunk(usage={"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}),
    b"[DONE]",
]


def fold(frames: list[bytes]) -> anthropic.types.Message:
    """The Message the frames add up to; each event must be one of the SDK's event types."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events(b"".join(frames)):
        event = _EVENT.validate_python(data)
        assert event.type == name
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(data["content_block"])
        elif name == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                message["content"][data["index"]]["text"] += delta["text"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop" and data["index"] in partial:
            message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    return anthropic.types.Message.model_validate(message)


def run(payloads: list[bytes]) -> tuple[MessagesEventStream, list[bytes]]:
    stream = MessagesEventStream(model="claude-x", message_id="msg_1")
    out = [frame for payload in payloads for frame in stream.feed(payload)]
    return stream, out + stream.close()


def test_text_and_tool_calls_become_blocks_in_anthropic_order() -> None:
    stream, frames = run(TOOL_ANSWER)
    names = [name for name, _ in events(b"".join(frames))]
    assert names == ["message_start", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "content_block_start",
                     "content_block_delta", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    message = fold(frames)
    assert message.model == "claude-x" and message.stop_reason == "tool_use"
    text, weather, time = message.content
    assert text.type == "text" and text.text == "Let me check."
    assert weather.type == "tool_use" and (weather.id, weather.name, weather.input) == (
        "call_1", "get_weather", {"city": "Paris"})
    assert time.type == "tool_use" and time.input == {}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (30, 12)
    assert stream.done and stream.usage == (30, 12)


def test_finish_reasons_map_to_stop_reasons() -> None:
    for finish, reason in [("stop", "end_turn"), ("length", "max_tokens"),
                           ("tool_calls", "tool_use"), ("content_filter", "refusal")]:
        _, frames = run([chunk({"content": "x"}), chunk({}, finish), b"[DONE]"])
        assert fold(frames).stop_reason == reason


def test_a_named_stop_string_is_a_stop_sequence() -> None:
    stream = MessagesEventStream(model="m", message_id="msg_1", stop_sequences=["END"])
    doc = json.loads(chunk({}, "stop"))
    doc["choices"][0]["stop_reason"] = "END"  # vLLM names the stop string it met
    frames = stream.feed(chunk({"content": "x"})) + stream.feed(json.dumps(doc).encode())
    frames += stream.feed(b"[DONE]")
    message = fold(frames)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")


def test_an_error_payload_mid_stream_is_an_error_event_and_the_end() -> None:
    error = {"error": {"message": "Overloaded", "type": "server_error", "code": "overloaded"}}
    stream, frames = run([chunk({"content": "x"}), json.dumps(error).encode(),
                          chunk({"content": "late"})])
    found = events(b"".join(frames))
    assert found[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error",
                                                               "message": "Overloaded"}})
    assert stream.failed and not stream.done
    assert all(name != "content_block_delta" or data["delta"]["text"] != "late"
               for name, data in found)


def test_a_stream_cut_before_it_finished_ends_in_an_error_event() -> None:
    stream, frames = run([chunk({"content": "x"})])
    assert events(b"".join(frames))[-1][0] == "error" and stream.failed


def test_unreadable_chunks_end_in_an_error_event() -> None:
    stream, frames = run([b"{not json"])
    assert [name for name, _ in events(b"".join(frames))] == ["error"]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_byte_splits_of_the_upstream_stream_change_nothing(cuts: list[int]) -> None:
    """The door decodes SSE from any cuts of the body; the frames it writes are the same."""
    from modelmux.codec.sse import SSEDecoder, encode_data

    body = b"".join(encode_data(p) for p in TOOL_ANSWER)
    points = sorted({min(c, len(body)) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    decoder = SSEDecoder()
    stream = MessagesEventStream(model="claude-x", message_id="msg_1")
    frames = [f for piece in pieces for e in decoder.feed(piece) for f in stream.feed(e.data)]
    frames += stream.close()
    assert b"".join(frames) == b"".join(run(TOOL_ANSWER)[1])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(TOOL_ANSWER), st.binary(max_size=40)), max_size=14))
def test_any_payloads_give_events_then_at_most_one_final_error(payloads: list[bytes]) -> None:
    stream, frames = run(payloads)
    found = events(b"".join(frames))
    assert stream.done != stream.failed
    errors = [i for i, (name, _) in enumerate(found) if name == "error"]
    assert errors == ([len(found) - 1] if stream.failed else [])
    if stream.done:
        assert found[-1][0] == "message_stop"
