"""Gemini translators, sans I/O: request mapping, answers, finish reasons, usage, and the stream
translator behind ``EventRelay`` giving the same client stream for every split of the bytes."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.errors import InvalidRequest, ModelMuxError, RateLimited
from modelmux.providers.event_relay import EventRelay
from modelmux.schemas.openai_chat import request_decoder
from modelmux.translate.chat_to_gemini import chat_to_gemini
from modelmux.translate.gemini_stream import GeminiStreamTranslator
from modelmux.translate.gemini_to_chat import gemini_to_chat
from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.gemini import google_error, response_json, sse, stream_events


def _request(**fields: Any) -> Any:
    doc = {"model": "g", "messages": [{"role": "user", "content": "hi"}], **fields}
    return request_decoder.decode(json.dumps(doc))


def _answer(doc: dict[str, Any]) -> Any:
    return gemini_to_chat(json.dumps(doc).encode(), model="m", completion_id="chatcmpl-abc",
                          created=1)


def test_images_system_and_json_mode() -> None:
    body = chat_to_gemini(_request(
        messages=[{"role": "developer", "content": "Sys."},
                  {"role": "user", "content": [
                      {"type": "text", "text": "see"},
                      {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                      {"type": "image_url", "image_url": {"url": "https://x.test/a.webp?s=1"}}]}],
        response_format={"type": "json_schema", "json_schema": {"name": "o", "schema": {
            "type": "object", "additionalProperties": False,
            "properties": {"a": {"type": "integer"}}}}},
        seed=3, tool_choice="none"), provider="p")
    assert body["systemInstruction"] == {"parts": [{"text": "Sys."}]}
    assert body["contents"] == [{"role": "user", "parts": [
        {"text": "see"}, {"inlineData": {"mimeType": "image/png", "data": "QUJD"}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/a.webp?s=1"}}]}]
    assert body["generationConfig"] == {"seed": 3, "responseMimeType": "application/json",
                                        "responseSchema": {"type": "object", "properties": {
                                            "a": {"type": "integer"}}}}
    assert "toolConfig" not in body


def test_named_tool_choice_limits_the_allowed_functions() -> None:
    tools = [{"type": "function", "function": {"name": n}} for n in ("a", "b")]
    body = chat_to_gemini(_request(tools=tools, tool_choice={
        "type": "function", "function": {"name": "b"}}), provider="p")
    assert body["tools"] == [{"functionDeclarations": [{"name": "a"}, {"name": "b"}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["b"]}}


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 3}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"messages": [{"role": "tool", "tool_call_id": "x", "content": "r"}]},
     "messages[0].tool_call_id"),
])
def test_refusals_name_the_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat_to_gemini(_request(**fields), provider="p")
    assert caught.value.param == param


@pytest.mark.parametrize(("reason", "calls", "want"), [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
    ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
    ("PROHIBITED_CONTENT", False, "content_filter"), ("OTHER", False, "stop"),
    ("SOMETHING_NEW", False, "stop"),
])
def test_finish_reasons(reason: str, calls: bool, want: str) -> None:
    parts: list[dict[str, Any]] = [{"text": "x"}]
    if calls:
        parts.append({"functionCall": {"name": "f", "args": {"a": 1}}})
    done = _answer({"candidates": [{"content": {"parts": parts}, "finishReason": reason}]})
    assert done.choices[0].finish_reason == want


def test_usage_counts_thoughts_as_completion_and_keeps_cached() -> None:
    done = _answer({"candidates": [{"content": {"parts": [{"text": "x"}]},
                                    "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4,
                                      "thoughtsTokenCount": 6, "cachedContentTokenCount": 3}})
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens,
            done.usage.total_tokens) == (10, 10, 20)
    assert done.usage.prompt_tokens_details == {"cached_tokens": 3}
    assert done.usage.completion_tokens_details == {"reasoning_tokens": 6}


def test_whole_answer_tools_and_blocked_prompt() -> None:
    done = _answer(response_json(TOOLS))
    message = done.choices[0].message
    assert message.content == TOOLS.text  # the thought part is dropped
    assert [c.id for c in message.tool_calls or ()] == ["call_abc_0", "call_abc_1"]
    blocked = _answer({"promptFeedback": {"blockReason": "SAFETY"}})
    assert blocked.choices[0].finish_reason == "content_filter"
    assert blocked.choices[0].message.content == ""
    with pytest.raises(RateLimited):
        _answer(google_error(429, "quota"))


def _relay(include_usage: bool = True) -> EventRelay:
    return EventRelay(GeminiStreamTranslator(model="m", completion_id="chatcmpl-abc", created=1,
                                             include_usage=include_usage))


def _run(pieces: list[bytes], include_usage: bool = True) -> tuple[list[bytes], EventRelay]:
    relay = _relay(include_usage)
    out = [frame for piece in pieces for frame in relay.feed(piece)]
    return out + relay.close(), relay


def _payloads(frames: list[bytes]) -> list[Any]:
    text = b"".join(frames).decode()
    return [json.loads(d) if d != "[DONE]" else d
            for d in (block.removeprefix("data: ") for block in text.split("\n\n") if block)]


def _cuts(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *edges], [*edges, len(data)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(points=st.lists(st.integers(min_value=0), max_size=40), tools=st.booleans())
def test_every_split_gives_the_same_client_stream(points: list[int], tools: bool) -> None:
    data = b"".join(stream_events(TOOLS if tools else TEXT))
    whole, _ = _run([data])
    cut, relay = _run(_cuts(data, points))
    assert cut == whole and relay.early_error is None


def test_stream_contract_one_finish_usage_then_done() -> None:
    frames, relay = _run([b"".join(stream_events(TOOLS))])
    payloads = _payloads(frames)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks
                if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 162
    named = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
             if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    assert [(t["index"], t.get("id"), t["function"].get("name")) for t in named] == [
        (0, "call_abc_0", "get_weather"), (0, None, None),
        (1, "call_abc_1", "get_time"), (1, None, None)]
    assert relay.usage == (120, 42)


def test_stream_errors_early_and_late() -> None:
    error = sse(google_error(429, "quota"))
    _, relay = _run([error])
    assert isinstance(relay.early_error, RateLimited)
    events = stream_events(TEXT)
    frames, relay = _run([*events[:2], error])
    assert relay.early_error is None and relay.finished
    assert _payloads(frames)[-1]["error"]["code"] == "rate_limit_exceeded"
    frames, relay = _run(events[:-1])
    assert _payloads(frames)[-1]["error"]["code"] == "upstream_stream_truncated"
    _, relay = _run([b"data: {not json\r\n\r\n"])
    assert isinstance(relay.early_error, ModelMuxError)
    assert relay.early_error.code == "upstream_protocol_error"


def test_chunks_decode_as_the_openai_schema() -> None:
    from modelmux.schemas.openai_chat import ChatCompletionChunk
    frames, _ = _run([b"".join(stream_events(TOOLS))])
    for payload in _payloads(frames)[:-1]:
        msgspec.json.decode(json.dumps(payload), type=ChatCompletionChunk)
