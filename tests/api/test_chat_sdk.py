"""Streaming modes as the official ``openai`` SDK sees them (it accepts only JSON, yet streams)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import openai
import pytest

from modelmux.config.schema import Config
from tests.api.helpers import CHROME, CHUNKS, REPEAT, TEXT, config, serving

ANSWER = TEXT * REPEAT
MESSAGES = [{"role": "user", "content": "hi"}]


@contextlib.asynccontextmanager
async def sdk(cfg: Config, **headers: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with serving(cfg) as port:
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused",
                                    max_retries=0, timeout=10, default_headers=headers or None)
        async with client:
            yield client


async def stream_texts(client: openai.AsyncOpenAI, **options: object) -> list[str]:
    """The content of every chunk, and the stream's finish reason as the last item."""
    stream = await client.chat.completions.create(model="mock", messages=MESSAGES, stream=True,
                                                  **options)  # type: ignore[call-overload]
    texts: list[str] = []
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            texts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert finish == "stop"
    return texts


def test_sdk_streams_standard_in_auto(run) -> None:
    async def main() -> None:
        async with sdk(config("auto")) as client:
            texts = await stream_texts(client)
            assert "".join(texts) == ANSWER
            assert len(texts) == CHUNKS + 2

    run(main())


def test_sdk_stream_with_usage_in_buffered(run) -> None:
    async def main() -> None:
        async with sdk(config("buffered")) as client:
            stream = await client.chat.completions.create(
                model="mock", messages=MESSAGES, stream=True,
                stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
            assert chunks[-1].choices == [] and chunks[-1].usage is not None
            assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == ANSWER
            assert len(chunks) < CHUNKS

    run(main())


@pytest.mark.parametrize("headers", [
    pytest.param({"x-modelmux-stream-mode": "buffered"}, id="override-header"),
    pytest.param({"User-Agent": CHROME}, id="browser-user-agent"),
])
def test_sdk_buffered_gets_fewer_chunks_and_the_same_text(run, headers: dict[str, str]) -> None:
    async def main() -> None:
        async with sdk(config("auto"), **headers) as client:
            texts = await stream_texts(client)
            assert "".join(texts) == ANSWER
            assert 3 <= len(texts) < CHUNKS

    run(main())


def test_sdk_always_mode_streams_a_stream_request(run) -> None:
    async def main() -> None:
        async with sdk(config("always")) as client:
            assert "".join(await stream_texts(client)) == ANSWER

    run(main())


@pytest.mark.parametrize("mode", ["auto", "never", "buffered"])
def test_sdk_non_stream_gets_a_chat_completion(run, mode: str) -> None:
    async def main() -> None:
        async with sdk(config(mode)) as client:  # type: ignore[arg-type]
            answer = await client.chat.completions.create(model="mock", messages=MESSAGES)
            assert answer.object == "chat.completion"
            assert answer.choices[0].message.content == ANSWER

    run(main())


def test_sdk_invalid_override_is_a_bad_request(run) -> None:
    async def main() -> None:
        async with sdk(config("auto"), **{"x-modelmux-stream-mode": "sometimes"}) as client:
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(model="mock", messages=MESSAGES, stream=True)
            assert info.value.param == "x-modelmux-stream-mode"

    run(main())
