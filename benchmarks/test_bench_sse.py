"""Micro-benchmarks of the SSE codec twins (py/native): decode an Anthropic stream, encode chunks.

Run: ``python -m pytest benchmarks/test_bench_sse.py -q``. Record numbers, with the machine and
the command, in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest

from tests.twins import import_twin, twin_params

PIECE = 1400  # about one TCP segment of payload
WORDS = "The quick brown fox jumps over the lazy dog while streaming tokens ".split()


def _event(name: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode()
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def anthropic_stream(deltas: int = 100) -> bytes:
    """A Messages API stream as Anthropic sends it: ``deltas`` content_block_delta events."""
    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-5",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1},
    }
    block = {"type": "text", "text": ""}
    start = {"type": "content_block_start", "index": 0, "content_block": block}
    parts = [
        _event("message_start", {"type": "message_start", "message": message}),
        _event("content_block_start", start),
        _event("ping", {"type": "ping"}),
    ]
    for i in range(deltas):
        text = " ".join(WORDS[i % len(WORDS) : i % len(WORDS) + 3]) + " "
        delta = {"type": "content_block_delta", "index": 0}
        delta["delta"] = {"type": "text_delta", "text": text}
        parts.append(_event("content_block_delta", delta))
    stop = {"stop_reason": "end_turn", "stop_sequence": None}
    usage = {"output_tokens": deltas}
    parts += [
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event("message_delta", {"type": "message_delta", "delta": stop, "usage": usage}),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(parts)


def openai_chunks(count: int = 100) -> list[bytes]:
    """``count`` chat.completion.chunk payloads, JSON-encoded as the translator emits them."""
    chunks = []
    for i in range(count):
        choice = {
            "index": 0,
            "delta": {"content": WORDS[i % len(WORDS)] + " "},
            "logprobs": None,
            "finish_reason": None,
        }
        chunk = {
            "id": "chatcmpl-9xYz",
            "object": "chat.completion.chunk",
            "created": 1718000000,
            "model": "gpt-4o-2024-08-06",
            "system_fingerprint": "fp_abc123",
            "choices": [choice],
        }
        chunks.append(json.dumps(chunk, separators=(",", ":")).encode())
    return chunks


@pytest.fixture(scope="module", params=twin_params("sse", "modelmux.codec._sse_py"))
def sse(request: pytest.FixtureRequest) -> ModuleType:
    return import_twin(request.param)


def test_decode_anthropic_stream(benchmark: Any, sse: ModuleType) -> None:
    stream = anthropic_stream()
    pieces = [stream[i : i + PIECE] for i in range(0, len(stream), PIECE)]

    def run() -> int:
        decoder = sse.SSEDecoder()
        count = 0
        for piece in pieces:
            count += len(decoder.feed(piece))
        decoder.close()
        return count

    assert benchmark(run) == 106


def test_encode_openai_chunks(benchmark: Any, sse: ModuleType) -> None:
    chunks = openai_chunks()
    encode_data = sse.encode_data

    def run() -> list[bytes]:
        return [encode_data(chunk) for chunk in chunks]

    out = benchmark(run)
    assert len(out) == 100 and out[0].startswith(b"data: {") and out[0].endswith(b"}\n\n")
