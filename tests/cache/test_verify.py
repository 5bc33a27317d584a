"""Only complete successes are storable: no errors, cut streams or filtered answers."""

from __future__ import annotations

import json
from typing import Any

from modelmux.cache.verify import storable

OPENAI, ANTHROPIC = "openai.chat", "anthropic.messages"


def completion(finish: str | None = "stop") -> bytes:
    return json.dumps({"id": "c", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"},
         "finish_reason": finish}]}).encode()


def sse(*docs: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(doc).encode() + b"\n\n" for doc in docs)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def event(kind: str, doc: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json.dumps(doc).encode() + b"\n\n"


def test_openai_answers() -> None:
    assert storable(OPENAI, "json", completion())
    assert not storable(OPENAI, "json", completion("content_filter"))
    assert not storable(OPENAI, "json", completion(None))
    assert not storable(OPENAI, "json", b'{"error": {"message": "x"}}')
    assert not storable(OPENAI, "json", b"not json")


def test_openai_streams() -> None:
    whole = [chunk({"role": "assistant"}), chunk({"content": "hi"}), chunk({}, "stop"),
             {"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}]
    assert storable(OPENAI, "sse", sse(*whole))
    assert not storable(OPENAI, "sse", sse(*whole, done=False))
    assert not storable(OPENAI, "sse", sse(*whole[:2], {"error": {"message": "reset"}},
                                           done=False))
    assert not storable(OPENAI, "sse", sse(whole[0], chunk({}, "content_filter")))
    assert not storable(OPENAI, "sse", sse(whole[0], whole[1]))  # [DONE] without a finish


def test_messages_answers_and_streams() -> None:
    message = {"type": "message", "role": "assistant", "content": [], "stop_reason": "end_turn"}
    assert storable(ANTHROPIC, "json", json.dumps(message).encode())
    assert not storable(ANTHROPIC, "json", json.dumps({**message, "stop_reason": "refusal"}
                                                      ).encode())
    assert not storable(ANTHROPIC, "json", b'{"type": "error", "error": {}}')
    start = event("message_start", {"type": "message_start", "message": {}})
    delta = event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}})
    stop = event("message_stop", {"type": "message_stop"})
    assert storable(ANTHROPIC, "sse", start + delta + stop)
    assert not storable(ANTHROPIC, "sse", start + delta)
    assert not storable(ANTHROPIC, "sse", start + event("error", {"type": "error"}) + stop)
    refused = event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "refusal"}})
    assert not storable(ANTHROPIC, "sse", start + refused + stop)
