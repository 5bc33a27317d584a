"""A real server running ``App`` on loopback, raw HTTP requests, SSE parsing, scripted providers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from modelmux.api.app import App
from modelmux.codec.sse import SSEDecoder, encode_data
from modelmux.config.providers import MockProviderConfig
from modelmux.config.schema import Config, StreamingConfig, StreamMode
from modelmux.providers.base import ChatCall, Provider
from modelmux.routing.models import ModelIndex
from tests.server.helpers import DEADLINE, connect, read_response, running

TEXT = "abcde"
REPEAT = 40
CHUNKS = 40
CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")


def config(mode: StreamMode = "auto", *, chunks: int = CHUNKS, delay_ms: float = 0.5,
           buffer_size: int = 4096, timeout_ms: int = 200) -> Config:
    mock = MockProviderConfig(name="mock", models=["mock"], text=TEXT, repeat=REPEAT,
                              chunks=chunks, chunk_delay_ms=delay_ms)
    streaming = StreamingConfig(mode=mode, buffer_size=buffer_size, chunk_timeout_ms=timeout_ms)
    return Config(provider=[mock], streaming=streaming)


@contextlib.asynccontextmanager
async def serving(cfg: Config, *providers: Provider) -> AsyncIterator[int]:
    """The app on a loopback port; ``providers``, when given, replace the configured ones."""
    app = App(cfg)
    if providers:
        app.models = ModelIndex(providers)
        app.pipeline = app.build_pipeline()
    try:
        async with running(app) as (_, port):
            yield port
    finally:
        await app.aclose()


def request_bytes(payload: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps(payload).encode()
    lines = ["POST /v1/chat/completions HTTP/1.1", "Host: t", "Content-Type: application/json",
             f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chat(stream: bool | None = True, model: str = "mock") -> dict[str, Any]:
    payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if stream is not None:
        payload["stream"] = stream
    return payload


async def post(port: int, payload: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await connect(port)
    try:
        writer.write(request_bytes(payload, headers))
        return await read_response(reader)
    finally:
        writer.close()


def payloads(body: bytes) -> list[bytes]:
    return [event.data for event in SSEDecoder().feed(body)]


def text_of(events: list[bytes]) -> str:
    out = []
    for data in events:
        if data != b"[DONE]":
            for choice in json.loads(data).get("choices", []):
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


async def read_events(reader: asyncio.StreamReader,
                      until: Callable[[list[bytes]], bool] | None = None, *,
                      head: bool = True) -> list[bytes]:
    """Read a chunked SSE response incrementally: until ``until(events so far)``, else to its end.

    ``head=False`` continues a body whose head an earlier call already read.
    """
    if head:
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        assert status.startswith(b"HTTP/1.1 200")
        assert b"transfer-encoding: chunked" in status.lower()
    decoder = SSEDecoder()
    events: list[bytes] = []
    while until is None or not until(events):
        size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), DEADLINE)).split(b";")[0], 16)
        piece = await asyncio.wait_for(reader.readexactly(size + 2), DEADLINE)
        if not size:
            assert until is None, "the stream ended first"
            break
        events += [event.data for event in decoder.feed(piece[:-2])]
    return events


def frame(call: ChatCall, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return encode_data(json.dumps({
        "id": call.completion_id, "object": "chat.completion.chunk", "created": call.created,
        "model": call.public_model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }).encode())


Step = Callable[[ChatCall], Awaitable[bytes | None]]


class ScriptedProvider(Provider):
    """Streams what its script returns, step by step; a step may wait or raise."""

    type = "scripted"

    def __init__(self, script: list[Step]) -> None:
        super().__init__("scripted", ["mock"])
        self.script = script
        self.closed = asyncio.Event()

    async def complete(self, call: ChatCall) -> bytes:
        raise AssertionError("not used")

    async def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        try:
            for step in self.script:
                piece = await step(call)
                if piece is not None:
                    yield piece
        finally:
            self.closed.set()


def say(content: str | None = None, *, role: bool = False, finish: str | None = None) -> Step:
    async def step(call: ChatCall) -> bytes:
        if role:
            return frame(call, {"role": "assistant", "content": ""})
        if finish:
            return frame(call, {}, finish)
        return frame(call, {"content": content})
    return step


def wait_for(event: asyncio.Event) -> Step:
    async def step(call: ChatCall) -> None:
        await event.wait()
    return step


def raw(data: bytes) -> Step:
    async def step(call: ChatCall) -> bytes:
        return data
    return step


def fail(error: Exception) -> Step:
    async def step(call: ChatCall) -> None:
        raise error
    return step


