"""Cohere translators, sans I/O: request mapping, answers, finish reasons, usage, and the stream
translator behind ``EventRelay`` giving the same client stream for every split of the bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.errors import InvalidRequest, UpstreamError
from modelmux.providers.event_relay import EventRelay
from modelmux.schemas.openai_chat import request_decoder
from modelmux.translate.chat_to_cohere import chat_to_cohere
from modelmux.translate.cohere_stream import CohereStreamTranslator
from modelmux.translate.cohere_to_chat import cohere_to_chat
from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.cohere import TEMPLATE_TOKENS, response_json, sse, stream_events


def _request(**fields: Any) -> Any:
    doc = {"model": "c", "messages": [{"role": "user", "content": "hi"}], **fields}
    return request_decoder.decode(json.dumps(doc))


def _answer(doc: dict[str, Any]) -> Any:
    return cohere_to_chat(json.dumps(doc).encode(), model="m", completion_id="chatcmpl-x",
                          created=1)


def test_images_json_mode_and_tool_choice_none() -> None:
    body = chat_to_cohere(_request(
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]}],
        response_format={"type": "json_schema", "json_schema": {"name": "o", "schema": {
            "type": "object"}}},
        tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="none"),
        model="c", provider="p")
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]}]
    assert body["response_format"] == {"type": "json_object", "json_schema": {"type": "object"}}
    assert body["tool_choice"] == "NONE"
    assert body["tools"] == [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {}}}}]


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 2}, "n"), ({"top_logprobs": 2}, "logprobs"), ({"tool_choice": "required"},
                                                         "tool_choice"),
])
def test_refusals_name_the_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat_to_cohere(_request(**fields), model="c", provider="p")
    assert caught.value.param == param


@pytest.mark.parametrize(("reason", "want"), [
    ("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"),
    ("TOOL_CALL", "tool_calls"), ("ERROR_TOXIC", "content_filter"), ("NEW_ONE", "stop"),
])
def test_finish_reasons(reason: str, want: str) -> None:
    done = _answer({"message": {"content": [{"type": "text", "text": "x"}]},
                    "finish_reason": reason})
    assert done.choices[0].finish_reason == want


def test_whole_answers_usage_and_error_finish() -> None:
    done = _answer(response_json(TOOLS))
    assert done.choices[0].message.content == TOOLS.text  # the tool plan
    assert [c.id for c in done.choices[0].message.tool_calls or ()] == ["toolu_01A", "toolu_02B"]
    assert done.usage is not None and done.usage.prompt_tokens == TOOLS.prompt_tokens
    only_tokens = _answer({"message": {"content": []}, "finish_reason": "COMPLETE",
                           "usage": {"tokens": {"input_tokens": 7.0, "output_tokens": 2}}})
    assert only_tokens.usage is not None and only_tokens.usage.total_tokens == 9
    with pytest.raises(UpstreamError):
        _answer({"message": {}, "finish_reason": "ERROR"})


def _run(pieces: list[bytes], include_usage: bool = True) -> tuple[list[bytes], EventRelay]:
    relay = EventRelay(CohereStreamTranslator(model="m", completion_id="chatcmpl-x", created=1,
                                              include_usage=include_usage))
    out = [frame for piece in pieces for frame in relay.feed(piece)]
    return out + relay.close(), relay


def _payloads(frames: list[bytes]) -> list[Any]:
    blocks = b"".join(frames).decode().split("\n\n")
    return [json.loads(b[6:]) if b != "data: [DONE]" else "[DONE]" for b in blocks if b]


@settings(max_examples=150, deadline=None)
@given(points=st.lists(st.integers(min_value=0), max_size=40), tools=st.booleans())
def test_every_split_gives_the_same_client_stream(points: list[int], tools: bool) -> None:
    data = b"".join(stream_events(TOOLS if tools else TEXT))
    edges = sorted({p % (len(data) + 1) for p in points})
    pieces = [data[a:b] for a, b in zip([0, *edges], [*edges, len(data)], strict=True)]
    cut, relay = _run(pieces)
    assert cut == _run([data])[0] and relay.early_error is None


def test_stream_contract_indexes_usage_and_done() -> None:
    frames, relay = _run([b"".join(stream_events(TOOLS))])
    payloads = _payloads(frames)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]
            and c["choices"][0]["finish_reason"]] == ["tool_calls"]
    named = [t for c in chunks if c["choices"] for t in c["choices"][0]["delta"].get(
        "tool_calls", []) if "id" in t]
    assert [(t["index"], t["id"], t["function"]["name"]) for t in named] == [
        (0, "toolu_01A", "get_weather"), (1, "toolu_02B", "get_time")]
    assert chunks[-1]["choices"] == [] and relay.usage == (120, 42)
    assert TEMPLATE_TOKENS  # billed units, not the templated token count, are reported


def test_stream_errors() -> None:
    events = stream_events(TEXT)
    error_end = sse({"type": "message-end", "delta": {"finish_reason": "ERROR",
                                                      "error": "boom"}})
    _, relay = _run([events[0], error_end])
    assert relay.early_error is not None and "boom" in relay.early_error.message
    frames, relay = _run([*events[:4], error_end])
    assert _payloads(frames)[-1]["error"]["code"] == "upstream_generation_error"
    frames, _ = _run(events[:-1])
    assert _payloads(frames)[-1]["error"]["code"] == "upstream_stream_truncated"
    stray = sse({"type": "tool-call-delta", "index": 3, "delta": {"message": {
        "tool_calls": {"function": {"arguments": "{"}}}}})
    frames, _ = _run([*events[:2], stray])
    assert _payloads(frames)[-1]["error"]["code"] == "upstream_protocol_error"


def test_nothing_follows_the_end() -> None:
    events = stream_events(TEXT)
    frames, relay = _run(events)
    assert frames.count(b"data: [DONE]\n\n") == 1
    assert relay.feed(events[1]) == [] and relay.close() == []
