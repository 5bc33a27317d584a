"""``bedrock`` end to end: the official SDK → the gateway → a fake Bedrock runtime that checks
every SigV4 signature.

Every byte split of the event stream, text and parallel tool calls, usage, a tool-result
follow-up, the request shape (URL-escaped model id, inferenceConfig, toolConfig, images),
Bedrock's error names, retries of throttling before the first byte, exception frames before
and after the first chunk, a broken CRC, and credentials dropped after an expired token.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.answers import TEXT, TOOLS, Answer, ToolCall
from tests.fakes.aws_metadata import FakeCredentialEndpoints
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.h2 import H2Fake
from tests.fakes.http import SPLITS, Split, whole
from tests.providers.harness import (
    MESSAGES,
    TOOLS_PARAM,
    Gateway,
    call_error,
    collect,
    expected,
    from_completion,
    gateway,
    provider_toml,
    same,
    serving,
)
from tests.providers.scenarios import breaks_mid_stream, every_way, fault_error, recovers
from tests.upstream import LOOPS, run

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
KEYS = 'access_key_id = "AKIDFAKE000000000001"\nsecret_access_key = "fake/secret"'


def bedrock_toml(base_url: str, *lines: str) -> str:
    return provider_toml("br", "bedrock", base_url, [MODEL], 'region = "us-east-1"', *lines)


@contextlib.asynccontextmanager
async def bedrock_gateway(*, answer: Answer = TEXT, split: Split = whole, extra: str = "",
                          token: str | None = None) -> AsyncIterator[tuple[Gateway, FakeBedrock]]:
    session = f'session_token = "{token}"' if token else ""
    async with serving(FakeBedrock(answer=answer, split=split, token=token),
                       lambda fake: bedrock_toml(fake.origin, KEYS, session, extra)) as served:
        yield served


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("loop", LOOPS)
def test_sdk_sees_the_same_answer_in_every_split(loop: str, split: str) -> None:
    def converse_paths(fake: FakeBedrock) -> None:
        assert fake.models == [MODEL] * 3
        assert fake.bodies[-1]["system"] == [{"text": "Be brief."}]
        paths = [r.path for r in fake.requests]
        assert paths[0] == "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
        assert paths[1].endswith("%3A0/converse-stream")

    run(loop, every_way(bedrock_gateway, MODEL, SPLITS[split], converse_paths), timeout=60)


def test_request_shape_and_tool_result_follow_up() -> None:
    image = "data:image/png;base64,iVBORw0KGgo="

    async def main() -> None:
        async with bedrock_gateway(answer=TOOLS, token="sess-token") as (gw, fake), \
                gw.client() as client:
            first = await client.chat.completions.create(
                model=MODEL, tools=TOOLS_PARAM, max_tokens=77, temperature=0.3, top_p=0.9,
                stop=["END", "STOP"],
                tool_choice={"type": "function", "function": {"name": "get_time"}},
                messages=[*MESSAGES[:1], {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": image}}]}])
            message = first.choices[0].message
            assert message.tool_calls is not None
            follow = [*MESSAGES, message.model_dump(exclude_none=True),
                      *({"role": "tool", "tool_call_id": c.id, "content": f"result {i}"}
                        for i, c in enumerate(message.tool_calls))]
            await client.chat.completions.create(model=MODEL, messages=follow, stream=True,
                                                 tools=TOOLS_PARAM, tool_choice="required")
        body = fake.bodies[0]
        assert fake.requests[0].headers["x-amz-security-token"] == "sess-token"
        assert body["inferenceConfig"] == {"maxTokens": 77, "temperature": 0.3, "topP": 0.9,
                                           "stopSequences": ["END", "STOP"]}
        assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "get_time"}}
        assert body["toolConfig"]["tools"][0] == {"toolSpec": {
            "name": "get_weather", "description": "Weather", "inputSchema": {"json": {
                "type": "object", "properties": {"city": {"type": "string"}}}}}}
        assert body["messages"] == [{"role": "user", "content": [
            {"text": "What is this?"},
            {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}]}]
        second = fake.bodies[1]
        assert second["toolConfig"]["toolChoice"] == {"any": {}}
        assert second["messages"][1] == {"role": "assistant", "content": [
            {"text": TOOLS.text},
            *({"toolUse": {"toolUseId": c.id, "name": c.name, "input": json.loads(c.arguments)}}
              for c in TOOLS.tool_calls)]}
        assert second["messages"][2] == {"role": "user", "content": [
            {"toolResult": {"toolUseId": c.id, "content": [{"text": f"result {i}"}]}}
            for i, c in enumerate(TOOLS.tool_calls)]}

    run("asyncio", main())


ERRORS = [
    ("400", openai.BadRequestError, 400, "invalid_request"),
    ("403", openai.PermissionDeniedError, 403, "upstream_access_denied"),
    ("404", openai.NotFoundError, 404, "model_not_found"),
    ("429", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("not_ready", openai.InternalServerError, 503, "service_unavailable"),
    ("503", openai.InternalServerError, 503, "service_unavailable"),
    ("500", openai.InternalServerError, 502, "upstream_server_error"),
]


@pytest.mark.parametrize(("fault", "exc", "status", "code"), ERRORS, ids=[e[0] for e in ERRORS])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_error_names(fault: str, exc: type, status: int, code: str, stream: bool) -> None:
    error = run("asyncio", fault_error(bedrock_gateway, MODEL, fault, exc, status, code,
                                       stream=stream))
    assert "Bedrock" in error.message


def test_validation_message_reaches_the_client() -> None:
    async def main() -> None:
        async with bedrock_gateway() as (gw, fake), gw.client() as client:
            fake.faults.append("400")
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model=MODEL, messages=MESSAGES)
            assert "The provided model identifier is invalid." in caught.value.message

    run("asyncio", main())


@pytest.mark.parametrize("faults", [["429"], ["not_ready"], ["503", "429"], ["exception_first"],
                                    ["reset_early"]],
                         ids=["429", "not_ready", "503-429", "exception_first", "reset_early"])
def test_retries_recover_before_the_first_byte(faults: list[str]) -> None:
    run("asyncio", recovers(bedrock_gateway, MODEL, faults))


def test_exception_frame_first_is_a_429_when_not_retried() -> None:
    async def main() -> None:
        async with bedrock_gateway(extra="max_retries = 0") as (gw, fake), gw.client() as client:
            fake.faults.append("exception_first")
            error = await call_error(client, MODEL, openai.RateLimitError, stream=True)
            assert "Too many tokens" in error.message

    run("asyncio", main())


@pytest.mark.parametrize(("fault", "code"), [("exception_mid", "upstream_server_error"),
                                             ("bad_crc", "upstream_bad_event_stream"),
                                             ("no_end", "upstream_stream_truncated"),
                                             ("reset", "upstream_closed")])
def test_mid_stream_failure_reaches_the_sdk_as_an_error(fault: str, code: str) -> None:
    run("asyncio", breaks_mid_stream(bedrock_gateway, MODEL, fault, code))


def test_wrong_secret_is_refused_by_the_signature_check() -> None:
    async def main() -> None:
        async with serving(FakeBedrock(secret="another"),
                           lambda fake: bedrock_toml(fake.origin, KEYS)) as (gw, _), \
                gw.client() as client:
                with pytest.raises(openai.InternalServerError) as caught:
                    await client.chat.completions.create(model=MODEL, messages=MESSAGES)
                assert caught.value.code == "upstream_auth_failed"  # type: ignore[attr-defined]
                assert "signature mismatch" in caught.value.message

    run("asyncio", main())


def test_unsupported_fields_are_refused_without_an_upstream_call() -> None:
    async def main() -> None:
        async with bedrock_gateway() as (gw, fake), gw.client() as client:
            for kwargs, param in (({"n": 2}, "n"),
                                  ({"response_format": {"type": "json_object"},
                                    "tools": TOOLS_PARAM}, "response_format")):
                error = await call_error(client, MODEL, openai.BadRequestError, stream=False,
                                         **kwargs)
                assert error.param == param
                assert "provider 'br' (bedrock)" in error.message
            assert fake.requests == []

    run("asyncio", main())


def test_signed_over_h2c() -> None:
    async def main() -> None:
        app = FakeBedrock(answer=TOOLS)
        async with H2Fake(app) as fake:
            app.authority = f"127.0.0.1:{fake.port}"
            toml = bedrock_toml(fake.base_url, "http2 = true", KEYS)
            async with gateway(toml) as gw, gw.client() as client:
                done = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
                same(from_completion(done), expected(TOOLS, MODEL))
                stream = await client.chat.completions.create(
                    model=MODEL, messages=MESSAGES, stream=True,
                    stream_options={"include_usage": True})
                same(await collect(stream), expected(TOOLS, MODEL))
            assert fake.connections == 1 and fake.h1_connections == 0

    run("asyncio", main())


def test_anthropic_sdk_through_the_messages_door() -> None:
    async def main() -> None:
        async with bedrock_gateway(answer=TOOLS) as (gw, fake):
            sdk = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{gw.port}",
                                           api_key="x", max_retries=0, timeout=10)
            async with sdk:
                done = await sdk.messages.create(model=MODEL, max_tokens=50, messages=[
                    {"role": "user", "content": "Weather?"}])
                assert done.stop_reason == "tool_use"
                assert [b.type for b in done.content] == ["text", "tool_use", "tool_use"]
                async with sdk.messages.stream(model=MODEL, max_tokens=50, messages=[
                        {"role": "user", "content": "Weather?"}]) as stream:
                    final = await stream.get_final_message()
                assert final.content[1].input == json.loads(  # type: ignore[union-attr]
                    TOOLS.tool_calls[0].arguments)
                assert final.usage.output_tokens == TOOLS.completion_tokens
            assert fake.bodies[0] == {  # a Claude model: the Messages body through InvokeModel
                "max_tokens": 50, "messages": [{"role": "user", "content": "Weather?"}],
                "anthropic_version": "bedrock-2023-05-31"}

    run("asyncio", main())


def test_chain_credentials_are_fetched_again_after_an_expired_token(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeCredentialEndpoints(expires=4_000_000_000) as creds, FakeBedrock(
                access_key="ASIAFAKE000000000001", secret="secret-1", token="token-1") as fake:
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                         "AWS_WEB_IDENTITY_TOKEN_FILE"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("HOME", str(tmp_path))
            monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
            monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
                               f"{creds.origin}/container/creds")
            monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-secret")
            async with gateway(bedrock_toml(fake.origin, "max_retries = 0")) as gw, \
                    gw.client() as client:
                await client.chat.completions.create(model=MODEL, messages=MESSAGES)
                await client.chat.completions.create(model=MODEL, messages=MESSAGES)
                assert creds.issued == 1
                fake.faults.append("expired")
                with pytest.raises(openai.InternalServerError) as caught:
                    await client.chat.completions.create(model=MODEL, messages=MESSAGES)
                assert caught.value.code == "upstream_auth_failed"  # type: ignore[attr-defined]
                fake.access_key, fake.secret, fake.token = (
                    "ASIAFAKE000000000002", "secret-2", "token-2")
                await client.chat.completions.create(model=MODEL, messages=MESSAGES)
                assert creds.issued == 2

    run("asyncio", main())


def test_json_mode_through_the_sdk() -> None:
    answer = Answer(tool_calls=(ToolCall("tooluse_J", "json_response", '{"city": "Paris"}'),))
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "w", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}

    async def main() -> None:
        async with bedrock_gateway(answer=answer) as (gw, fake), gw.client() as client:
            done = await client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                        response_format=fmt)
            assert done.choices[0].message.content == '{"city": "Paris"}'
            assert done.choices[0].finish_reason == "stop"
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, response_format={"type": "json_object"},
                stream=True)
            seen = await collect(stream)
            assert (seen.text, seen.finish_reason, seen.tool_calls) == (
                '{"city": "Paris"}', "stop", {})
            assert fake.bodies[0]["toolConfig"]["toolChoice"] == {
                "tool": {"name": "json_response"}}

    run("asyncio", main())
