"""The Anthropic door's test helpers: the official ``anthropic`` SDK pointed at a gateway, and
a reader of Anthropic event streams."""

from __future__ import annotations

import json
from typing import Any

import anthropic

from modelmux.codec.sse import SSEDecoder
from tests.providers.harness import Gateway

MOCK_TOML = '''
[[provider]]
name = "mock"
type = "mock"
models = ["mock"]
text = "hello world "
repeat = 3
chunks = 4

[models]
"claude-sonnet-4-5" = "mock"
'''
WEATHER: dict[str, Any] = {
    "name": "get_weather", "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]}}
USER = [{"role": "user", "content": "Weather in Paris?"}]


def client(gw: Gateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{gw.port}", api_key="x",
                                    max_retries=0, timeout=10.0)


def events(stream: bytes) -> list[tuple[str, Any]]:
    """(event name, decoded data) for each event of an SSE body."""
    decoder = SSEDecoder()
    found = decoder.feed(stream) + decoder.close()
    return [(event.event, json.loads(event.data)) for event in found]


async def post(port: int, path: str, body: bytes,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw POST (the body sent byte for byte) and the whole response."""
    from tests.server.helpers import connect, read_response

    lines = [f"POST {path} HTTP/1.1", "Host: t", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    reader, writer = await connect(port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return await read_response(reader)
    finally:
        writer.close()
