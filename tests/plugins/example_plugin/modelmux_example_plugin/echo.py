"""The ``echo`` provider type: answers with the last user message, in OpenAI's shapes.

It needs no upstream, so it ignores the connection pool. ``fail_on`` makes it raise an
ordinary exception when the user's text contains it: a way to see ModelMux contain a broken
provider plugin (the client gets a 500 naming ``echo``); ``fail_midway`` makes a stream raise
after its first chunk (the stream ends with an error event naming ``echo``). ``embed`` shows
an optional method: each input's "embedding" is its length in characters and in words.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from modelmux.plugins import ChatCall, ConnectionPool, EmbedCall, PluginProviderConfig, Provider


class EchoConfig(PluginProviderConfig, frozen=True):
    """``[[provider]] type = "echo"``: ``name`` and ``models``, plus these."""

    prefix: str = ""
    chunks: int = 3
    fail_on: str = ""
    fail_midway: str = ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content
                       if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class EchoProvider(Provider):
    """Echoes the last user message, optionally after ``prefix``."""

    type = "echo"
    Config = EchoConfig

    def __init__(self, config: EchoConfig, pool: ConnectionPool | None) -> None:
        super().__init__(config.name, list(config.models))
        self.prefix = config.prefix
        self.chunks = max(config.chunks, 1)
        self.fail_on = config.fail_on
        self.fail_midway = config.fail_midway

    def answer(self, call: ChatCall) -> str:
        """The text to answer ``call`` with (the body the middleware left, not the client's)."""
        messages = json.loads(call.raw).get("messages", [])
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text = _text(users[-1].get("content")) if users else ""
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("echo was asked to fail")
        return self.prefix + text

    def _usage(self, text: str) -> dict[str, int]:
        return {"prompt_tokens": len(text.split()), "completion_tokens": len(text.split()),
                "total_tokens": 2 * len(text.split())}

    async def complete(self, call: ChatCall) -> bytes:
        text = self.answer(call)
        return json.dumps({
            "id": call.completion_id, "object": "chat.completion", "created": call.created,
            "model": call.public_model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": self._usage(text),
        }).encode()

    async def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        text = self.answer(call)
        head = {"id": call.completion_id, "object": "chat.completion.chunk",
                "created": call.created, "model": call.public_model}
        yield _sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]})
        if self.fail_midway and self.fail_midway in text:
            raise RuntimeError("echo was asked to fail midway")
        size = -(-len(text) // self.chunks) or 1
        for start in range(0, len(text), size):
            yield _sse({**head, "choices": [{"index": 0, "delta": {"content": text[start:start + size]},
                                             "finish_reason": None}]})
        yield _sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if call.include_usage:
            yield _sse({**head, "choices": [], "usage": self._usage(text)})
        yield b"data: [DONE]\n\n"

    async def embed(self, call: EmbedCall) -> bytes:
        given = json.loads(call.raw)["input"]
        texts = [given] if isinstance(given, str) else [str(item) for item in given]
        return json.dumps({
            "object": "list", "model": call.public_model,
            "data": [{"object": "embedding", "index": n,
                      "embedding": [float(len(text)), float(len(text.split()))]}
                     for n, text in enumerate(texts)],
            "usage": {"prompt_tokens": sum(len(t.split()) for t in texts),
                      "total_tokens": sum(len(t.split()) for t in texts)},
        }).encode()
