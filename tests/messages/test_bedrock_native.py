"""The Messages door to Claude on Bedrock: InvokeModel with the client's own body, the event
stream's base64 ``chunk`` events turned back into Anthropic SSE, CountTokens, and Bedrock's
errors in Anthropic's shape. The fake checks every SigV4 signature."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.codec import _eventstream_py
from modelmux.providers.bedrock_claude import InvokeStreamRelay, invoke_body, is_claude
from tests.fakes.answers import TOOLS
from tests.fakes.bedrock import FakeBedrock, chunk, claude_docs, exception
from tests.fakes.claude import COUNTED_TOKENS
from tests.messages.helpers import USER, WEATHER, client, events, post
from tests.messages.test_native_sdk import UNKNOWN, raw_request
from tests.providers.harness import Gateway, gateway
from tests.twins import import_twin, twin_params
from tests.upstream import run

ALIAS = "claude-sonnet-4-5"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
KEYS = 'access_key_id = "AKIDFAKE000000000001"\nsecret_access_key = "fake/secret"\n'
THINKING: list[dict[str, Any]] = [
    {"type": "message_start", "message": {
        "id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": MODEL,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 1, "cache_read_input_tokens": 5}}},
    {"type": "content_block_start", "index": 0,
     "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
    {"type": "content_block_delta", "index": 0,
     "delta": {"type": "thinking_delta", "thinking": "Paris → weather tool."}},
    {"type": "content_block_delta", "index": 0,
     "delta": {"type": "signature_delta", "signature": "EqQBCkYIAxgCIkD=="}},
    {"type": "content_block_stop", "index": 0},
    {"type": "x_future_event", "payload": {"n": [1, 2.5]}},
    {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_bdrk_1", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": 'ris"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 21}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": 35, "outputTokenCount": 21, "invocationLatency": 400,
        "firstByteLatency": 90}},
]


@contextlib.asynccontextmanager
async def bedrock_claude() -> AsyncIterator[tuple[Gateway, FakeBedrock]]:
    async with FakeBedrock(answer=TOOLS) as fake:
        toml = (f'[[provider]]\nname = "br"\ntype = "bedrock"\nregion = "us-east-1"\n'
                f'models = ["{MODEL}"]\nbase_url = "{fake.origin}"\n{KEYS}max_retries = 0\n'
                f'[models]\n"{ALIAS}" = "{MODEL}"\n')
        async with gateway(toml) as gw:
            yield gw, fake


def client_frames(docs: list[dict[str, Any]], model: str) -> list[tuple[str, Any]]:
    """What the client should read for ``docs``: every event, ``message_start`` renamed."""
    out = []
    for doc in docs:
        if doc["type"] == "message_start":
            doc = {**doc, "message": {**doc["message"], "model": model}}
        out.append((doc["type"], doc))
    return out


def test_claude_model_ids() -> None:
    assert is_claude("anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert is_claude(MODEL) and is_claude("global.anthropic.claude-opus-4-1-20250805-v1:0")
    assert is_claude("apac.anthropic.claude-3-haiku-20240307-v1:0")
    assert not is_claude("meta.llama3-1-70b-instruct-v1:0")
    assert not is_claude("amazon.nova-pro-v1:0") and not is_claude("cohere.command-r-v1:0")


def test_unknown_fields_reach_bedrock_byte_for_byte_and_betas_move_into_the_body() -> None:
    async def main() -> None:
        async with bedrock_claude() as (gw, fake):
            for stream in (False, True):
                body = raw_request(ALIAS, stream=stream)
                status, headers, answer = await post(
                    gw.port, "/v1/messages", body,
                    {"anthropic-beta": "future-2099-01-01, interleaved-thinking-2025-05-14"})
                assert status == 200, answer
                sent = fake.raw_bodies[-1]
                assert UNKNOWN.split(b":", 1)[1].strip() in sent
                assert b'"cache_control": {"type": "ephemeral"}' in sent
                doc = json.loads(sent)
                assert "model" not in doc and "stream" not in doc
                assert doc["anthropic_version"] == "bedrock-2023-05-31"
                assert doc["anthropic_beta"] == ["future-2099-01-01",
                                                 "interleaved-thinking-2025-05-14"]
                assert doc["thinking"] == {"type": "enabled", "budget_tokens": 1024}
                request = fake.requests[-1]
                assert "anthropic-beta" not in request.headers
                assert request.path.endswith(
                    "/invoke-with-response-stream" if stream else "/invoke")
                assert fake.models[-1] == MODEL
                assert "x-modelmux-dropped-fields" not in headers
                if stream:
                    assert headers["content-type"].startswith("text/event-stream")
                    found = events(answer)
                    assert found == client_frames(claude_docs(TOOLS, MODEL), ALIAS)
                else:
                    assert json.loads(answer)["model"] == ALIAS

    run("asyncio", main())


def test_invoke_body_keeps_every_other_byte() -> None:
    body = b'{"model":"x","z":{"k": [1,  2]},"stream":true,"anthropic_beta":["a"]}'
    out = invoke_body(body, [(b"anthropic-beta", b"a,b")])
    assert out == (b'{"z":{"k": [1,  2]},"anthropic_beta":["a","b"],'
                   b'"anthropic_version":"bedrock-2023-05-31"}')


def test_sdk_stream_with_thinking_and_tool_use_passes_through() -> None:
    async def main() -> None:
        async with bedrock_claude() as (gw, fake), client(gw) as sdk:
            fake.claude_docs = THINKING
            async with sdk.messages.stream(model=ALIAS, max_tokens=2048, messages=USER,
                                           tools=[WEATHER], thinking={
                                               "type": "enabled", "budget_tokens": 1024}) as s:
                final = await s.get_final_message()
            assert final.model == ALIAS and final.stop_reason == "tool_use"
            thinking, tool = final.content
            assert thinking.type == "thinking" and thinking.thinking == "Paris → weather tool."
            assert thinking.signature == "EqQBCkYIAxgCIkD=="
            assert tool.type == "tool_use" and tool.input == {"city": "Paris"}
            assert final.usage.output_tokens == 21
            body = json.dumps({"model": ALIAS, "max_tokens": 2048, "messages": USER,
                               "stream": True}).encode()
            status, _, answer = await post(gw.port, "/v1/messages", body)
            assert status == 200 and events(answer) == client_frames(THINKING, ALIAS)

    run("asyncio", main())


ERRORS = [("400", anthropic.BadRequestError, 400, "invalid_request_error"),
          ("429", anthropic.RateLimitError, 429, "rate_limit_error"),
          ("exception_first", anthropic.RateLimitError, 429, "rate_limit_error")]


@pytest.mark.parametrize(("fault", "error", "status", "kind"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bedrock_errors_in_anthropics_shape(fault: str, error: type, status: int,
                                            kind: str) -> None:
    async def main() -> None:
        async with bedrock_claude() as (gw, fake), client(gw) as sdk:
            for streamed in (False, True) if fault != "exception_first" else (True,):
                fake.faults.append(fault)
                with pytest.raises(error) as caught:
                    if streamed:
                        async with sdk.messages.stream(model=ALIAS, max_tokens=8,
                                                       messages=USER) as stream:
                            await stream.get_final_message()
                    else:
                        await sdk.messages.create(model=ALIAS, max_tokens=8, messages=USER)
                got: Any = caught.value
                assert got.status_code == status and got.request_id
                assert got.body["type"] == "error" and got.body["error"]["type"] == kind
                if fault == "400":
                    assert "provided model identifier is invalid" in got.body["error"]["message"]
            status_after, _, _ = await post(gw.port, "/v1/messages", json.dumps(
                {"model": ALIAS, "max_tokens": 8, "messages": USER}).encode())
            assert status_after == 200  # the server keeps serving

    run("asyncio", main())


def test_a_mid_stream_exception_is_an_error_event() -> None:
    async def main() -> None:
        async with bedrock_claude() as (gw, fake):
            fake.faults.append("exception_mid")
            body = json.dumps({"model": ALIAS, "max_tokens": 64, "messages": USER,
                               "stream": True}).encode()
            status, _, answer = await post(gw.port, "/v1/messages", body)
            found = events(answer)
            assert status == 200 and found[0][0] == "message_start"
            assert found[-1] == ("error", {"type": "error", "error": {
                "type": "api_error",
                "message": found[-1][1]["error"]["message"]}})
            assert "failed mid-way" in found[-1][1]["error"]["message"]
            assert "message_stop" not in [name for name, _ in found]

    run("asyncio", main())


def test_count_tokens_uses_bedrock_count_tokens() -> None:
    async def main() -> None:
        async with bedrock_claude() as (gw, fake), client(gw) as sdk:
            counted = await sdk.messages.with_raw_response.count_tokens(
                model=ALIAS, messages=USER, tools=[WEATHER],
                extra_headers={"anthropic-beta": "token-efficient-tools-2025-02-19"})
            assert counted.headers["x-modelmux-token-count"] == "native"
            assert (await counted.parse()).input_tokens == COUNTED_TOKENS
            assert fake.requests[-1].path.endswith("/count-tokens")
            inner = json.loads(base64.b64decode(fake.bodies[-1]["input"]["invokeModel"]["body"]))
            assert inner == {"messages": USER, "tools": [WEATHER], "max_tokens": 1,
                             "anthropic_version": "bedrock-2023-05-31",
                             "anthropic_beta": ["token-efficient-tools-2025-02-19"]}
            fake.faults.append("400")
            with pytest.raises(anthropic.BadRequestError):
                await sdk.messages.count_tokens(model=ALIAS, messages=USER)

    run("asyncio", main())


def _stream_bytes() -> bytes:
    docs = [*THINKING[:6], {"type": "ping"}, *THINKING[6:]]
    return b"".join(chunk(doc) for doc in docs)


def _relay_output(decoder: Any, pieces: list[bytes]) -> tuple[bytes, Any]:
    relay = InvokeStreamRelay("br", ALIAS, frames=decoder)
    out = b"".join(b"".join(relay.feed(piece)) for piece in pieces) + b"".join(relay.close())
    return out, (relay.usage, relay.cache, relay.finished, relay.early_error)


@pytest.mark.parametrize("module", twin_params("eventstream",
                                               "modelmux.codec._eventstream_py"))
@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=40))
def test_any_split_of_the_upstream_stream_gives_the_same_client_stream(
        module: str, cuts: list[int]) -> None:
    data = _stream_bytes()
    twin = import_twin(module)
    whole, state = _relay_output(_eventstream_py.EventStreamDecoder(), [data])
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    split, split_state = _relay_output(twin.EventStreamDecoder(), pieces)
    assert split == whole and split_state == state
    assert state[0] == (35, 21) and state[1] == (5, 0) and state[2]
    assert whole.startswith(b"event: message_start\ndata: ")
    assert b'"model":"claude-sonnet-4-5"' in whole
    assert b"event: x_future_event\n" in whole and b"amazon-bedrock-invocationMetrics" in whole


def test_exception_frames_before_and_after_the_first_event() -> None:
    early = InvokeStreamRelay("br", ALIAS)
    assert early.feed(exception("throttlingException", "slow down")) == []
    assert early.early_error is not None and early.early_error.status == 429
    late = InvokeStreamRelay("br", ALIAS)
    out = late.feed(chunk(THINKING[0]) + exception("internalServerException", "boom"))
    assert out[-1].startswith(b"event: error\ndata: ") and late.finished
    assert late.early_error is None and b"boom" in out[-1]
    broken = InvokeStreamRelay("br", ALIAS)
    with pytest.raises(_eventstream_py.EventStreamError):
        broken.feed(chunk(THINKING[0])[:-3] + b"\x00\x00\x00")
        broken.close()


@pytest.mark.parametrize("wrap", ['{{"bytes":"{}"}}', '{{"bytes": "{}" }}', '{{"bytes":"{}","p":"abc"}}',
                                  '{{"p":"ab","bytes":"{}"}}'])
def test_every_payload_part_spelling_is_read(wrap: str) -> None:
    data = base64.b64encode(json.dumps({"type": "ping"}).encode()).decode()
    frame = _eventstream_py.encode_message(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
        wrap.format(data).encode())
    relay = InvokeStreamRelay("br", ALIAS)
    relay.feed(chunk(THINKING[0]))
    assert relay.feed(frame) == [b'event: ping\ndata: {"type": "ping"}\n\n']
