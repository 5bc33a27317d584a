"""The official ``anthropic`` SDK against the gateway, for every provider type behind it: create,
stream, tools with a tool_result follow-up, count_tokens, the upstream's errors and a failure
after the stream began, each answer with a ``request-id``. The client always asks for
``claude-sonnet-4-5``; ``[models]`` sends it to the provider under test."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from tests.fakes.answers import TOOLS
from tests.fakes.claude import COUNTED_TOKENS
from tests.messages.backends import ALIAS, FAULTS, KINDS, NATIVE, TOOL_RESULT_MARK, backend
from tests.messages.helpers import USER, WEATHER, client, events, post
from tests.upstream import run

TIME: dict[str, Any] = {"name": "get_time", "input_schema": {
    "type": "object", "properties": {"tz": {"type": "string"}}}}
TOOL_SET = [WEATHER, TIME]
COUNTS = {"gemini": "native", "vertex-gemini": "native", "cohere": "native; text"}
"""Providers that count with an endpoint of their own (``test_native_count`` checks the counts)."""
WANT_CALLS = [(c.name, json.loads(c.arguments)) for c in TOOLS.tool_calls]


def _calls(message: Any) -> list[tuple[str, Any]]:
    return [(b.name, b.input) for b in message.content if b.type == "tool_use"]


def _check_tools(kind: str, message: Any) -> None:
    assert message.model == ALIAS and message.stop_reason == "tool_use"
    if kind == "mock":  # the mock calls the first tool with arguments made from its schema
        assert [name for name, _ in _calls(message)] == ["get_weather"]
        return
    assert _calls(message) == WANT_CALLS
    texts = [b.text for b in message.content if b.type == "text"]
    assert texts == [TOOLS.text]
    assert message.usage.output_tokens == TOOLS.completion_tokens


@pytest.mark.parametrize("kind", KINDS)
def test_create_stream_tool_loop_and_count_tokens(kind: str) -> None:
    async def main() -> None:
        async with backend(kind) as b, client(b.gw) as sdk:
            raw = await sdk.messages.with_raw_response.create(
                model=ALIAS, max_tokens=64, messages=USER, tools=TOOL_SET)
            assert raw.headers["request-id"] == raw.headers["x-request-id"]
            first = await raw.parse()
            _check_tools(kind, first)
            async with sdk.messages.stream(model=ALIAS, max_tokens=64, messages=USER,
                                           tools=TOOL_SET) as stream:
                assert stream.response.headers["request-id"]
                streamed = await stream.get_final_message()
            _check_tools(kind, streamed)
            assert _calls(streamed) == _calls(first)

            results = [{"type": "tool_result", "tool_use_id": block.id,
                        "content": "sunny, 21 degrees"}
                       for block in first.content if block.type == "tool_use"]
            history = [*USER, {"role": "assistant", "content": [
                block.model_dump(exclude={"parsed_output"}) for block in first.content]},
                {"role": "user", "content": results}]
            follow = await sdk.messages.create(model=ALIAS, max_tokens=64, messages=history,
                                               tools=TOOL_SET)
            assert follow.model == ALIAS
            if kind != "mock":
                sent = b.last_body()
                assert "sunny, 21 degrees" in sent and TOOL_RESULT_MARK[kind] in sent, sent

            counted = await sdk.messages.with_raw_response.count_tokens(
                model=ALIAS, messages=history, tools=TOOL_SET)
            assert counted.headers["request-id"]
            tokens = (await counted.parse()).input_tokens
            if kind in NATIVE:
                assert counted.headers["x-modelmux-token-count"] == "native"
                assert tokens == COUNTED_TOKENS
            elif kind in COUNTS:
                assert counted.headers["x-modelmux-token-count"] == COUNTS[kind]
                assert tokens > 0
            else:
                assert counted.headers["x-modelmux-token-count"].startswith("estimate")
                assert tokens > 0

    run("asyncio", main())


UPSTREAM_ERRORS = [("429", anthropic.RateLimitError, 429, "rate_limit_error"),
                   ("500", anthropic.InternalServerError, 500, "api_error")]


@pytest.mark.parametrize(("fault", "error", "status", "kind_of_error"), UPSTREAM_ERRORS,
                         ids=[e[0] for e in UPSTREAM_ERRORS])
@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_upstream_errors_in_anthropics_shape(kind: str, fault: str, error: type, status: int,
                                             kind_of_error: str) -> None:
    async def main() -> None:
        async with backend(kind) as b, client(b.gw) as sdk:
            for streamed in (False, True):
                b.fault(fault)
                with pytest.raises(error) as caught:
                    if streamed:
                        async with sdk.messages.stream(model=ALIAS, max_tokens=8,
                                                       messages=USER) as stream:
                            await stream.get_final_message()
                    else:
                        await sdk.messages.create(model=ALIAS, max_tokens=8, messages=USER)
                got: Any = caught.value
                assert got.status_code == status and got.request_id
                assert got.body == {"type": "error", "error": {
                    "type": kind_of_error, "message": got.body["error"]["message"]}}

    run("asyncio", main())


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_a_failure_after_the_stream_began_is_an_error_event(kind: str) -> None:
    async def main() -> None:
        async with backend(kind) as b:
            b.fault("mid")
            body = json.dumps({"model": ALIAS, "max_tokens": 64, "messages": USER,
                               "tools": TOOL_SET, "stream": True}).encode()
            status, headers, answer = await post(b.gw.port, "/v1/messages", body)
            assert status == 200 and headers["request-id"]
            found = events(answer)
            assert found[0][0] == "message_start"
            name, doc = found[-1]
            assert name == "error" and doc["type"] == "error", found[-3:]
            assert doc["error"]["type"] in ("api_error", "overloaded_error")
            assert doc["error"]["message"]
            assert "message_stop" not in [event for event, _ in found]

    run("asyncio", main())
