"""Bedrock Converse translators, sans I/O: request mapping, answers, stop reasons, usage, error
names, and the stream translator behind ``ConverseRelay`` giving the same client stream for
every split of the event stream bytes. The stream tests run on both twins (decoder and
translator together)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.codec import _eventstream_py
from modelmux.codec.eventstream import EventStreamError, encode_message
from modelmux.errors import (
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
)
from modelmux.providers.bedrock import ConverseRelay, bedrock_error
from modelmux.schemas.openai_chat import request_decoder
from modelmux.translate import _converse_stream_py as pure_twin
from modelmux.translate.chat_to_converse import chat_to_converse
from modelmux.translate.converse_to_chat import STOP_REASONS, converse_error, converse_to_chat
from tests.fakes.answers import TEXT, TOOLS, Answer, ToolCall
from tests.fakes.bedrock import event, exception, response_body, stream_events
from tests.twins import import_twin, twin_params

TWINS = {pure_twin.__name__: _eventstream_py.__name__,
         "modelmux._speedups.converse_stream": "modelmux._speedups.eventstream"}
"""Each translator twin with the decoder twin of the same kind."""
ConverseStreamTranslator = pure_twin.ConverseStreamTranslator
EventStreamDecoder = _eventstream_py.EventStreamDecoder


@pytest.fixture(scope="module", autouse=True,
                params=twin_params("converse_stream", pure_twin.__name__))
def twin(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every test of this module on each pair of twins (module scope, for hypothesis)."""
    global ConverseStreamTranslator, EventStreamDecoder
    ConverseStreamTranslator = import_twin(request.param).ConverseStreamTranslator
    EventStreamDecoder = import_twin(TWINS[request.param]).EventStreamDecoder
    yield request.param
    ConverseStreamTranslator = pure_twin.ConverseStreamTranslator
    EventStreamDecoder = _eventstream_py.EventStreamDecoder


def new_relay(include_usage: bool = True, json_tool: str | None = None) -> ConverseRelay:
    return ConverseRelay(ConverseStreamTranslator(model="m", completion_id="chatcmpl-x",
                                                  created=1, include_usage=include_usage,
                                                  json_tool=json_tool), EventStreamDecoder())


def _request(**fields: Any) -> Any:
    doc = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return request_decoder.decode(json.dumps(doc))


def test_roles_merge_and_tool_choice_none_sends_no_tools() -> None:
    body = chat_to_converse(_request(
        messages=[{"role": "system", "content": "S1"}, {"role": "developer", "content": "S2"},
                  {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                  {"role": "assistant", "content": ""}, {"role": "user", "content": "c"}],
        tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="none"),
        provider="p")
    assert body == {"system": [{"text": "S1"}, {"text": "S2"}], "messages": [
        {"role": "user", "content": [{"text": "a"}, {"text": "b"}, {"text": "c"}]}]}


def test_default_tool_choice_is_auto_and_empty_schema_is_an_object() -> None:
    body = chat_to_converse(_request(tools=[{"type": "function", "function": {"name": "f"}}]),
                            provider="p")
    assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": "f", "inputSchema": {
        "json": {"type": "object", "properties": {}}}}}], "toolChoice": {"auto": {}}}


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 2}, "n"), ({"top_logprobs": 2}, "logprobs"), ({"tool_choice": "required"},
                                                         "tool_choice"),
    ({"response_format": {"type": "json_object"},
      "tools": [{"type": "function", "function": {"name": "f"}}]}, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "https://x/y.png"}}]}]}, "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/tiff;base64,QUJD"}}]}]}, "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "assistant", "content": "x", "tool_calls": [{
        "id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "system", "content": "only"}]}, "messages"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_refusals_name_the_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat_to_converse(_request(**fields), provider="p")
    assert caught.value.param == param


@pytest.mark.parametrize(("reason", "finish"), [*STOP_REASONS.items(), ("new_reason", "stop")])
def test_stop_reasons(reason: str, finish: str) -> None:
    doc = {"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
           "stopReason": reason, "usage": {"inputTokens": 3, "outputTokens": 2,
                                           "totalTokens": 5, "cacheReadInputTokens": 4}}
    done = converse_to_chat(json.dumps(doc).encode(), model="m", completion_id="c", created=1)
    assert done.choices[0].finish_reason == finish
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens,
            done.usage.prompt_tokens_details) == (7, 2, 9, {"cached_tokens": 4})


def test_whole_answer_keeps_tool_input_text() -> None:
    done = converse_to_chat(response_body(TOOLS), model="m", completion_id="c", created=1)
    calls = done.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        (c.id, c.name, c.arguments) for c in TOOLS.tool_calls]
    with pytest.raises(UpstreamError, match="unreadable"):
        converse_to_chat(b"[1", model="m", completion_id="c", created=1)


@pytest.mark.parametrize(("name", "cls", "status"), [
    ("ValidationException", InvalidRequest, 400),
    ("AccessDeniedException", PermissionDenied, 403),
    ("ResourceNotFoundException", ModelNotFound, 404),
    ("ThrottlingException", RateLimited, 429),
    ("throttlingException", RateLimited, 429),
    ("ModelNotReadyException:http://internal.amazon.com/coral/x/", ServiceUnavailable, 503),
    ("com.amazonaws#ServiceUnavailableException", ServiceUnavailable, 503),
    ("SomethingNewException", UpstreamError, 502),
])
def test_error_names(name: str, cls: type, status: int) -> None:
    error = converse_error(name, "msg", 500)
    assert type(error) is cls and error.status == status and "msg" in error.message


def test_http_error_without_a_name_uses_the_status_table() -> None:
    error = bedrock_error("p", 429, [(b"retry-after", b"3")], b'{"message":"slow"}')
    assert isinstance(error, RateLimited) and error.headers == [(b"retry-after", b"3")]
    error = bedrock_error("p", 400, [], b'{"__type":"ValidationException","message":"bad"}')
    assert isinstance(error, InvalidRequest) and error.message == "Bedrock ValidationException: bad"


def wire(answer: Answer) -> bytes:
    return b"".join(stream_events(answer))


def relay_out(pieces: list[bytes], include_usage: bool = True) -> tuple[bytes, Any, Any]:
    relay = new_relay(include_usage)
    out: list[bytes] = []
    try:
        for piece in pieces:
            out += relay.feed(piece)
        out += relay.close()
    except EventStreamError as exc:
        return b"".join(out), "error", exc.code
    early = relay.early_error
    return b"".join(out), relay.usage, None if early is None else early.code


def chunks(out: bytes) -> list[Any]:
    frames = [f.removeprefix(b"data: ") for f in out.split(b"\n\n") if f]
    assert frames[-1] == b"[DONE]"
    return [json.loads(f) for f in frames[:-1]]


def test_stream_text_and_tools() -> None:
    for answer in (TEXT, TOOLS):
        out, usage, early = relay_out([wire(answer)])
        assert early is None and usage == (answer.prompt_tokens, answer.completion_tokens)
        docs = chunks(out)
        text = "".join(d["choices"][0]["delta"].get("content") or "" for d in docs if d["choices"])
        assert text == answer.text
        finishes = [d["choices"][0]["finish_reason"] for d in docs if d["choices"]]
        assert [f for f in finishes if f] == [answer.finish_reason]
        assert docs[-1]["choices"] == [] and docs[-1]["usage"]["prompt_tokens"] == (
            answer.prompt_tokens)
        calls: dict[int, dict[str, str]] = {}
        for d in docs:
            for call in (d["choices"][0]["delta"].get("tool_calls") or []) if d["choices"] else []:
                slot = calls.setdefault(call["index"], {"id": "", "args": ""})
                slot["id"] += call.get("id") or ""
                slot["args"] += call["function"].get("arguments") or ""
        assert calls == {i: {"id": c.id, "args": c.arguments}
                         for i, c in enumerate(answer.tool_calls)}


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([TEXT, TOOLS]), st.booleans(), st.data())
def test_any_split_gives_the_same_client_stream(answer: Answer, include_usage: bool,
                                                data: st.DataObject) -> None:
    raw = wire(answer)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=20)))
    points = [0, *cuts, len(raw)]
    pieces = [raw[a:b] for a, b in itertools.pairwise(points)]
    assert relay_out(pieces, include_usage) == relay_out([raw], include_usage)


def test_exception_first_is_an_early_error_and_later_an_error_event() -> None:
    out, _, early = relay_out([exception("throttlingException", "slow")])
    assert (out, early) == (b"", "rate_limit_exceeded")
    events = stream_events(TEXT)
    out, _, early = relay_out([b"".join(events[:3]) + exception("validationException", "no")])
    assert early is None
    assert out.endswith(b'"code":"invalid_request","param":null}}\n\n')
    assert b"[DONE]" not in out


def test_truncated_and_unknown_events() -> None:
    events = stream_events(TEXT)
    out, _, _ = relay_out([b"".join(events[:-2])])
    assert b"upstream_stream_truncated" in out and b"[DONE]" not in out
    odd = event("somethingNew", {"x": 1})
    assert relay_out([events[0] + odd + b"".join(events[1:])]) == relay_out([wire(TEXT)])
    stray = event("contentBlockDelta", {"delta": {"toolUse": {"input": "{"}},
                                        "contentBlockIndex": 5})
    out, _, _ = relay_out([events[0] + stray])
    assert b"upstream_protocol_error" in out
    error_frame = encode_message({":message-type": "error", ":error-code": "InternalFailure",
                                  ":error-message": "boom"}, b"")
    out, _, _ = relay_out([events[0] + error_frame])
    assert b"boom" in out and b"[DONE]" not in out


def test_tool_history_without_tools_declares_the_called_tools() -> None:
    history = [{"role": "user", "content": "q"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                   {"id": "t2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
               {"role": "tool", "tool_call_id": "t1", "content": "1"},
               {"role": "tool", "tool_call_id": "t2", "content": ""}]
    for extra in ({}, {"tools": [{"type": "function", "function": {"name": "f"}}],
                       "tool_choice": "none"}):
        body = chat_to_converse(_request(messages=history, **extra), provider="p")
        assert body["toolConfig"] == {"tools": [
            {"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object",
                                                              "properties": {}}}}}
            for n in ("f", "g")]}
        assert body["messages"][2]["content"] == [
            {"toolResult": {"toolUseId": "t1", "content": [{"text": "1"}]}},
            {"toolResult": {"toolUseId": "t2", "content": [{"text": " "}]}}]
    with pytest.raises(InvalidRequest) as caught:
        chat_to_converse(_request(messages=[history[0], history[2]]), provider="p")
    assert caught.value.param == "messages"


JSON_ANSWER = Answer(tool_calls=(ToolCall("tooluse_J", "json_response",
                                          '{"city": "Paris", "n": [1, 2]}'),))


def test_json_mode_is_a_forced_tool_and_its_input_is_the_content() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = chat_to_converse(_request(response_format={"type": "json_schema", "json_schema": {
        "name": "w", "schema": schema}}), provider="p")
    assert body["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "json_response", "description": "Give the answer as this tool's input.",
        "inputSchema": {"json": schema}}}], "toolChoice": {"tool": {"name": "json_response"}}}
    plain = chat_to_converse(_request(response_format={"type": "json_object"}), provider="p")
    assert plain["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {
        "json": {"type": "object", "properties": {}}}
    done = converse_to_chat(response_body(JSON_ANSWER), model="m", completion_id="c",
                            created=1, json_tool="json_response")
    assert done.choices[0].message.content == '{"city": "Paris", "n": [1, 2]}'
    assert done.choices[0].message.tool_calls is None
    assert done.choices[0].finish_reason == "stop"


def test_json_mode_stream() -> None:
    relay = new_relay(False, "json_response")
    raw = wire(JSON_ANSWER)
    frames = [f for i in range(0, len(raw), 7) for f in relay.feed(raw[i:i + 7])]
    out = b"".join([*frames, *relay.close()])
    docs = chunks(out)
    text = "".join(d["choices"][0]["delta"].get("content") or "" for d in docs)
    assert text == '{"city": "Paris", "n": [1, 2]}'
    assert not any(d["choices"][0]["delta"].get("tool_calls") for d in docs)
    assert [d["choices"][0]["finish_reason"] for d in docs if d["choices"][0][
        "finish_reason"]] == ["stop"]
