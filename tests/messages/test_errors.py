"""Every error on the Messages door is Anthropic's shape, type and status, with a request-id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import anthropic
import pytest

from modelmux.api.messages import relay_translated
from modelmux.api.messages_door import AnthropicError
from modelmux.codec.sse import encode_data
from modelmux.errors import (
    AuthenticationFailed,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
)
from modelmux.translate.messages_events import PING, MessagesEventStream
from tests.messages.helpers import MOCK_TOML, USER, client, post
from tests.messages.test_translated_sdk import compatible
from tests.providers.harness import gateway
from tests.upstream import run


@pytest.mark.parametrize(("error", "status", "kind"), [
    (InvalidRequest("x"), 400, "invalid_request_error"),
    (AuthenticationFailed("x"), 401, "authentication_error"),
    (PermissionDenied("x"), 403, "permission_error"),
    (ModelNotFound("x"), 404, "not_found_error"),
    (PayloadTooLarge("x"), 413, "request_too_large"),
    (RateLimited("x"), 429, "rate_limit_error"),
    (InternalError("x"), 500, "api_error"),
    (UpstreamError("x"), 500, "api_error"),
    (UpstreamAuthFailed("x"), 500, "api_error"),
    (ServiceUnavailable("x"), 529, "overloaded_error"),
    (ServiceUnavailable("x", code="overloaded"), 529, "overloaded_error"),
])
def test_each_error_maps_to_anthropic_type_and_status(error: Exception, status: int,
                                                      kind: str) -> None:
    rendered = AnthropicError(error)  # type: ignore[arg-type]
    assert rendered.status == status
    assert json.loads(rendered.body()) == {"type": "error",
                                           "error": {"type": kind, "message": "x"}}


def test_client_errors_through_the_sdk() -> None:
    async def main() -> None:
        toml = MOCK_TOML.replace("[models]", "[server]\nmax_body_bytes = 2048\n[models]")
        async with gateway(toml) as gw, client(gw) as sdk:
            with pytest.raises(anthropic.NotFoundError) as missing:
                await sdk.messages.create(model="nope", max_tokens=8, messages=USER)
            assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
            assert missing.value.request_id
            with pytest.raises(anthropic.BadRequestError) as bad:
                await sdk.messages.create(model="mock", max_tokens=8,
                                          messages=[{"role": "robot", "content": "x"}])
            assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
            with pytest.raises(anthropic.APIStatusError) as large:
                await sdk.messages.create(model="mock", max_tokens=8,
                                          messages=[{"role": "user", "content": "x" * 4096}])
            assert large.value.status_code == 413
            assert large.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
            status, headers, body = await post(gw.port, "/v1/messages",
                                               b'{"model": "mock", "messages": []}')
            assert status == 400 and headers["request-id"]
            assert json.loads(body) == {"type": "error", "error": {
                "type": "invalid_request_error",
                "message": "max_tokens: Object missing required field `max_tokens`"}}
            status, _, body = await post(gw.port, "/v1/messages", b"{nope")
            assert status == 400 and json.loads(body)["type"] == "error"

    run("asyncio", main())


@pytest.mark.parametrize(("fault", "error", "kind"), [
    ("429", anthropic.RateLimitError, "rate_limit_error"),
    ("500", anthropic.InternalServerError, "api_error"),
    ("503", anthropic.InternalServerError, "api_error"),
])
def test_upstream_errors_of_a_translated_provider(fault: str, error: type, kind: str) -> None:
    async def main() -> None:
        async with compatible() as (gw, fake), client(gw) as sdk:
            fake.faults.append(fault)
            with pytest.raises(error) as caught:
                await sdk.messages.create(model="llama", max_tokens=8, messages=USER)
            assert caught.value.body["error"]["type"] == kind  # type: ignore[attr-defined]

    run("asyncio", main())


def test_a_translated_stream_failing_mid_way_ends_in_an_error_event() -> None:
    async def main() -> None:
        async with compatible() as (gw, fake), client(gw) as sdk:
            fake.faults.append("error_event")
            with pytest.raises(anthropic.APIStatusError) as caught:
                async with sdk.messages.stream(model="llama", max_tokens=8,
                                               messages=USER) as stream:
                    async for _ in stream:
                        pass
            assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]

    run("asyncio", main())


def test_a_quiet_provider_gets_ping_events_and_no_chunk_is_lost() -> None:
    async def main() -> None:
        written: list[bytes] = []
        pinged = asyncio.Event()

        async def write(data: bytes) -> None:
            written.append(data)
            if data == PING:
                pinged.set()

        async def chunks() -> AsyncGenerator[bytes, None]:
            await pinged.wait()  # silent until the door has pinged
            yield encode_data(b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
            yield encode_data(b"[DONE]")

        first = encode_data(b'{"choices":[{"index":0,"delta":{"content":"hi"}}]}')
        events = MessagesEventStream(model="m", message_id="msg_1")
        await relay_translated(write, chunks(), first, events, 0.001)
        assert PING in written and events.done
        assert written.index(PING) < len(written) - 1
        assert b"message_stop" in written[-1]

    run("asyncio", main())
