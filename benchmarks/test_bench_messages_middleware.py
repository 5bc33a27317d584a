"""pytest-benchmark: what a middleware's change costs a native Claude call on ``/v1/messages``.

Run: ``python -m pytest benchmarks/test_bench_messages_middleware.py``. The body is a Claude
Code-like request (system prompt, two tools, a 12-turn conversation). ``untouched`` is what
the door adds when no middleware changed the request (the check that sends the client's bytes
as they came); ``rebuilt`` is ``rebuilt_messages_body`` after one turn was redacted; for
scale, ``door`` is the decode and translation the door does for every request, and
``middleware_floor`` the least a changing middleware pays itself (``ctx.json()`` and
``ctx.replace_json``: decode, encode, validate the internal request).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from modelmux.api.messages import decode_messages
from modelmux.api.messages_rebuild import rebuilt_messages_body
from modelmux.schemas.openai_chat import ChatCompletionRequest, request_decoder
from modelmux.translate.messages_request import encode, messages_to_chat_request

pytest.importorskip("pytest_benchmark")

TOOL = {"name": "read_file", "description": "Read a file from the workspace.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}},
                         "required": ["path"]}}


def _body() -> bytes:
    turns: list[dict[str, Any]] = []
    for i in range(6):
        turns.append({"role": "user", "content": [
            {"type": "text", "text": f"Step {i}: look at src/module_{i}.py and tell me what it does. "
                                     "Mail the summary to dev@example.com."}]})
        turns.append({"role": "assistant", "content": [
            {"type": "text", "text": f"Module {i} parses the configuration and validates it. " * 4}]})
    return json.dumps({
        "model": "claude-sonnet-4-5", "max_tokens": 4096,
        "system": [{"type": "text", "text": "You are a careful coding assistant. " * 20,
                    "cache_control": {"type": "ephemeral"}}],
        "tools": [TOOL, {**TOOL, "name": "list_dir"}], "messages": turns,
        "thinking": {"type": "enabled", "budget_tokens": 2048}, "stream": True,
    }).encode()


BODY = _body()


def _door(body: bytes) -> ChatCompletionRequest:
    request, fields = decode_messages(body)
    chat, _ = messages_to_chat_request(request, fields, stream=True)
    return request_decoder.decode(encode(chat))


def _redacted(request: ChatCompletionRequest) -> ChatCompletionRequest:
    value = msgspec.json.decode(msgspec.json.encode(request))
    last = value["messages"][-2]["content"][0]
    last["text"] = last["text"].replace("dev@example.com", "[redacted]")
    return request_decoder.decode(msgspec.json.encode(value))


def test_untouched(benchmark: Any) -> None:
    internal = _door(BODY)
    request, plan = internal, [object()]

    def check() -> bytes:
        native_body = BODY
        if request is not internal and any(plan):
            native_body = b""
        return native_body

    assert benchmark(check) is BODY


def test_rebuilt(benchmark: Any) -> None:
    before = _door(BODY)
    after = _redacted(before)
    out = benchmark(rebuilt_messages_body, BODY, before, after)
    assert b"[redacted]" in out and b"thinking" in out


def test_door(benchmark: Any) -> None:
    benchmark(_door, BODY)


def test_middleware_floor(benchmark: Any) -> None:
    body = encode(msgspec.json.decode(msgspec.json.encode(_door(BODY))))

    def change() -> ChatCompletionRequest:
        value = msgspec.json.decode(body)
        return request_decoder.decode(msgspec.json.encode(value))

    benchmark(change)
