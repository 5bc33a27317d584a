"""Streaming modes end to end: the real server, ``App`` and a mock provider, over raw HTTP."""

from __future__ import annotations

import asyncio
import json

import pytest

from modelmux.errors import UpstreamError
from tests.api.helpers import (
    CHROME,
    CHUNKS,
    REPEAT,
    TEXT,
    ScriptedProvider,
    chat,
    config,
    fail,
    payloads,
    post,
    raw,
    read_events,
    request_bytes,
    say,
    serving,
    text_of,
    wait_for,
)
from tests.server.helpers import DEADLINE, connect

ANSWER = TEXT * REPEAT
SDK_HEADERS = {"User-Agent": "OpenAI/Python 1.40.0", "Accept": "application/json"}


def assert_sse(status: int, headers: dict[str, str], body: bytes) -> list[bytes]:
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = payloads(body)
    assert events[-1] == b"[DONE]"
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"
    assert text_of(events) == ANSWER
    return events


def assert_json(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 200
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == ANSWER


def test_standard_relays_every_chunk(run) -> None:
    async def main() -> None:
        async with serving(config("standard")) as port:
            events = assert_sse(*await post(port, chat(), {"User-Agent": CHROME}))
            assert len(events) == CHUNKS + 3

    run(main())


def test_auto_streams_the_official_sdk_despite_accept_json(run) -> None:
    async def main() -> None:
        async with serving(config("auto")) as port:
            events = assert_sse(*await post(port, chat(), SDK_HEADERS))
            assert len(events) == CHUNKS + 3

    run(main())


def test_auto_buffers_a_browser_with_fewer_events_and_the_same_text(run) -> None:
    async def main() -> None:
        async with serving(config("auto")) as port:
            standard = assert_sse(*await post(port, chat(), SDK_HEADERS))
            buffered = assert_sse(*await post(port, chat(), {"User-Agent": CHROME}))
            assert len(buffered) < len(standard)
            assert len(buffered) >= 4

    run(main())


def test_buffered_flushes_by_size(run) -> None:
    async def main() -> None:
        async with serving(config("buffered", buffer_size=20, timeout_ms=60_000)) as port:
            events = assert_sse(*await post(port, chat()))
            texts = [json.loads(e)["choices"][0]["delta"]["content"] for e in events[1:-2]]
            assert texts == [ANSWER[i:i + 20] for i in range(0, len(ANSWER), 20)]

    run(main())


def test_buffered_timer_flushes_while_the_provider_is_quiet(run) -> None:
    """The client sees the first text before the provider may go on: only the timer can send it."""

    async def main() -> None:
        gate = asyncio.Event()
        provider = ScriptedProvider([say(role=True), say("first"), wait_for(gate), say("second"),
                                     say(finish="stop"), raw(b"data: [DONE]\n\n")])
        async with serving(config("buffered", timeout_ms=20), provider) as port:
            reader, writer = await connect(port)
            writer.write(request_bytes(chat()))
            events = await read_events(reader, lambda got: text_of(got) == "first")
            assert len(events) == 2
            gate.set()
            events += await read_events(reader, head=False)
            assert text_of(events) == "firstsecond"
            assert events[-1] == b"[DONE]"
            writer.close()

    run(main())


def test_buffered_flushes_pending_text_before_a_mid_stream_error(run) -> None:
    async def main() -> None:
        provider = ScriptedProvider([say(role=True), say("a"), say("b"),
                                     fail(UpstreamError("upstream went away"))])
        async with serving(config("buffered"), provider) as port:
            status, _, body = await post(port, chat())
            events = payloads(body)
            assert status == 200 and len(events) == 3
            assert text_of(events[:2]) == "ab"
            assert json.loads(events[2])["error"]["message"] == "upstream went away"

    run(main())


def test_buffered_passes_a_provider_error_event_through_after_the_text(run) -> None:
    async def main() -> None:
        error = (b'data: {"error":{"message":"quota","type":"upstream_error","code":"x",'
                 b'"param":null}}\n\n')
        provider = ScriptedProvider([say(role=True), say("a"), say("b"), raw(error)])
        async with serving(config("buffered"), provider) as port:
            _, _, body = await post(port, chat())
            events = payloads(body)
            assert text_of(events[:2]) == "ab" and events[2] == error[6:-2] and len(events) == 3

    run(main())


def test_buffered_client_disconnect_closes_the_provider_stream(run) -> None:
    async def main() -> None:
        never = asyncio.Event()
        provider = ScriptedProvider([say(role=True), say("first"), wait_for(never)])
        async with serving(config("buffered", timeout_ms=5), provider) as port:
            reader, writer = await connect(port)
            writer.write(request_bytes(chat()))
            await read_events(reader, lambda got: text_of(got) == "first")
            writer.close()
            await asyncio.wait_for(provider.closed.wait(), DEADLINE)

    run(main())


def test_never_answers_a_stream_request_with_a_chat_completion(run) -> None:
    async def main() -> None:
        async with serving(config("never")) as port:
            assert_json(*await post(port, chat(stream=True), SDK_HEADERS))

    run(main())


@pytest.mark.parametrize("ua", ["PostmanRuntime/7.39.0", "insomnia/2023.5.8", "goose/1.0"])
def test_auto_never_clients_get_json(run, ua: str) -> None:
    async def main() -> None:
        async with serving(config("auto")) as port:
            assert_json(*await post(port, chat(stream=True), {"User-Agent": ua}))

    run(main())


@pytest.mark.parametrize("stream", [False, None])
def test_always_streams_to_a_client_that_did_not_ask(run, stream: bool | None) -> None:
    async def main() -> None:
        async with serving(config("always")) as port:
            events = assert_sse(*await post(port, chat(stream=stream), SDK_HEADERS))
            assert len(events) == CHUNKS + 3

    run(main())


@pytest.mark.parametrize("mode", ["auto", "standard", "buffered"])
def test_a_client_that_did_not_ask_gets_json(run, mode: str) -> None:
    async def main() -> None:
        async with serving(config(mode)) as port:  # type: ignore[arg-type]
            assert_json(*await post(port, chat(stream=False), {"User-Agent": CHROME}))

    run(main())


def test_header_overrides_the_configured_mode(run) -> None:
    async def main() -> None:
        async with serving(config("standard")) as port:
            standard = assert_sse(*await post(port, chat()))
            buffered = assert_sse(*await post(port, chat(), {"X-ModelMux-Stream-Mode": "buffered"}))
            assert len(buffered) < len(standard)
            assert_json(*await post(port, chat(), {"x-modelmux-stream-mode": "never"}))
            assert_sse(*await post(port, chat(stream=False), {"x-modelmux-stream-mode": "Always"}))
            auto = assert_sse(*await post(port, chat(), {"x-modelmux-stream-mode": "auto",
                                                         "User-Agent": CHROME}))
            assert len(auto) < len(standard)

    run(main())


def test_invalid_header_is_a_400_naming_it(run) -> None:
    async def main() -> None:
        async with serving(config("auto")) as port:
            status, headers, body = await post(port, chat(), {"x-modelmux-stream-mode": "turbo"})
            assert status == 400 and headers["content-type"] == "application/json"
            error = json.loads(body)["error"]
            assert error["type"] == "invalid_request_error"
            assert error["param"] == "x-modelmux-stream-mode"
            assert "'turbo'" in error["message"]

    run(main())
