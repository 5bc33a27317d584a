"""Response helpers shared by the routes: JSON bodies, SSE streams and error events."""

from __future__ import annotations

import msgspec

from modelmux.codec.sse import encode_data
from modelmux.errors import Headers, ModelMuxError
from modelmux.server.exchange import Exchange

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

_encode = msgspec.json.Encoder().encode


async def send_json(exchange: Exchange, status: int, payload: object, headers: Headers | None = None) -> None:
    """Encode ``payload`` and send it as a complete JSON response."""
    body = payload if isinstance(payload, bytes) else _encode(payload)
    await exchange.respond(status, [*JSON_HEADERS, *(headers or [])], body)


def error_event(error: ModelMuxError) -> bytes:
    """An OpenAI-style error as an SSE event, for failures after the stream has started."""
    return encode_data(error.body())
