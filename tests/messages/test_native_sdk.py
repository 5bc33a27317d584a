"""The Messages door to Claude providers (Anthropic, Vertex): the client's body goes through
with only the model (and Vertex's fields) changed, and the answer comes back as it is."""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.claude import COUNTED_TOKENS
from tests.messages.helpers import USER, WEATHER, client, events, post
from tests.providers.test_claude import FLAVOURS, claude_gateway
from tests.upstream import run

ALIAS = '[models]\n"claude-sonnet-4-5" = "sonnet"\n'
UNKNOWN = b'"x_future_feature" : {"b": [1, 2.50, "\\u00e9"],  "a": null}'


def raw_request(model: str, *, stream: bool = False) -> bytes:
    return (b'{"model": "' + model.encode() + b'", "max_tokens": 64, ' + UNKNOWN +
            b', "thinking": {"type": "enabled", "budget_tokens": 1024}, "stream": ' +
            (b"true" if stream else b"false") +
            b', "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", '
            b'"cache_control": {"type": "ephemeral"}}]}]}')


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_unknown_fields_reach_the_upstream_byte_for_byte(flavour: str) -> None:
    async def main() -> None:
        async with claude_gateway(flavour, extra=ALIAS) as s:
            for stream in (False, True):
                body = raw_request("claude-sonnet-4-5", stream=stream)
                status, headers, answer = await post(s.gw.port, "/v1/messages", body,
                                                     {"anthropic-beta": "future-2099-01-01"})
                assert status == 200, answer
                sent = s.claude.requests[-1]
                assert UNKNOWN.split(b":", 1)[1].strip() in sent.body
                doc = json.loads(sent.body)
                assert doc["thinking"] == {"type": "enabled", "budget_tokens": 1024}
                assert doc["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
                if flavour == "anthropic":
                    assert doc["model"] == "sonnet"
                    assert sent.headers["anthropic-beta"] == "future-2099-01-01"
                else:
                    assert "model" not in doc and doc["anthropic_version"] == "vertex-2023-10-16"
                    assert s.claude.paths[-1]["model"] == "sonnet"
                assert "x-modelmux-dropped-fields" not in headers
                if stream:
                    found = events(answer)
                    assert found[0][1]["message"]["model"] == "claude-sonnet-4-5"
                    assert found[-1][0] == "message_stop"
                else:
                    assert json.loads(answer)["model"] == "claude-sonnet-4-5"

    run("asyncio", main())


def test_a_body_with_nothing_to_change_goes_through_unchanged() -> None:
    async def main() -> None:
        async with claude_gateway("anthropic") as s:
            body = raw_request("sonnet")
            status, _, _ = await post(s.gw.port, "/v1/messages", body)
            assert status == 200 and s.claude.requests[-1].body == body

    run("asyncio", main())


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_sdk_create_stream_tools_and_count_tokens(flavour: str) -> None:
    async def main() -> None:
        async with claude_gateway(flavour, answer=TOOLS, extra=ALIAS) as s, \
                client(s.gw) as sdk:
            message = await sdk.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                                                messages=USER, tools=[WEATHER])
            assert message.model == "claude-sonnet-4-5" and message.stop_reason == "tool_use"
            assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
            async with sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                           messages=USER, tools=[WEATHER]) as stream:
                streamed = await stream.get_final_message()
            assert [b.model_dump(exclude={"parsed_output"}) for b in streamed.content] == [
                b.model_dump() for b in message.content]
            assert streamed.model == "claude-sonnet-4-5"
            call = message.content[1]
            follow = await sdk.messages.create(
                model="claude-sonnet-4-5", max_tokens=64, tools=[WEATHER],
                messages=[*USER, {"role": "assistant", "content": [call.model_dump()]},
                          {"role": "user", "content": [{"type": "tool_result",
                                                        "tool_use_id": call.id,  # type: ignore[union-attr]
                                                        "content": "sunny"}]}])
            assert follow.stop_reason == "tool_use"
            sent = s.claude.bodies[-1]
            assert sent["messages"][-1]["content"][0]["type"] == "tool_result"
            raw = await sdk.messages.with_raw_response.count_tokens(model="claude-sonnet-4-5",
                                                                    messages=USER)
            assert raw.headers["x-modelmux-token-count"] == "native"
            assert (await raw.parse()).input_tokens == COUNTED_TOKENS
            counted = s.claude.bodies[-1]
            assert counted["model"] == "sonnet" and counted["messages"] == USER
            if flavour == "vertex":
                assert counted["anthropic_version"] == "vertex-2023-10-16"
                assert s.claude.requests[-1].path.endswith("/models/count-tokens:rawPredict")

    run("asyncio", main())


@pytest.mark.parametrize(("fault", "error", "kind"), [
    ("429", anthropic.RateLimitError, "rate_limit_error"),
    ("500", anthropic.InternalServerError, "api_error"),
    ("529", anthropic.InternalServerError, "overloaded_error"),
])
def test_upstream_errors_keep_anthropic_types(fault: str, error: type, kind: str) -> None:
    async def main() -> None:
        async with claude_gateway("anthropic", extra="max_retries = 0\n") as s, \
                client(s.gw) as sdk:
            s.claude.faults.append(fault)
            with pytest.raises(error) as caught:
                await sdk.messages.create(model="sonnet", max_tokens=8, messages=USER)
            assert caught.value.body["error"]["type"] == kind  # type: ignore[attr-defined]
            assert caught.value.request_id  # type: ignore[attr-defined]

    run("asyncio", main())


def test_overload_mid_stream_is_an_error_event() -> None:
    async def main() -> None:
        async with claude_gateway("anthropic", answer=TEXT) as s:
            s.claude.faults.append("overloaded_event")
            status, _, answer = await post(s.gw.port, "/v1/messages", raw_request("sonnet",
                                                                                   stream=True))
            assert status == 200
            assert events(answer)[-1] == ("error", {"type": "error", "error": {
                "type": "overloaded_error", "message": "Overloaded"}})

    run("asyncio", main())


def test_vertex_gets_anthropic_beta_as_a_header_on_both_routes() -> None:
    """As Anthropic's own Vertex client sends it (only Bedrock moves betas into the body)."""
    async def main() -> None:
        async with claude_gateway("vertex", extra=ALIAS) as s:
            beta = {"anthropic-beta": "context-1m-2025-08-07,future-2099-01-01"}
            count = (b'{"model": "claude-sonnet-4-5", '
                     b'"messages": [{"role": "user", "content": "hi"}]}')
            for path, body in (("/v1/messages", raw_request("claude-sonnet-4-5")),
                               ("/v1/messages/count_tokens", count)):
                status, _, answer = await post(s.gw.port, path, body, beta)
                assert status == 200, answer
                sent = s.claude.requests[-1]
                assert sent.headers["anthropic-beta"] == beta["anthropic-beta"]
                assert "anthropic_beta" not in json.loads(sent.body)
            assert s.claude.requests[-1].path == (
                "/v1/projects/fake-project/locations/us-east5/publishers/anthropic/models/"
                "count-tokens:rawPredict")

    run("asyncio", main())
