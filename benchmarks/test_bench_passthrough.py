"""pytest-benchmark: the native Claude stream passthrough beside the OpenAI-compatible splice.

Run: ``python -m pytest benchmarks/test_bench_passthrough.py``. One round is a fresh relay fed
a 100-delta stream, one upstream read per event (how a token stream arrives) or the whole
stream in one read (under load). ``PassthroughRelay`` (``/v1/messages`` to Anthropic or Vertex)
passes the upstream's bytes on, SSE-decoding each event only to see where the stream is and
JSON-decoding only ``message_start`` and ``message_delta``; ``ChunkRelay`` (``openai_compatible``,
both twins) re-frames each payload with the model renamed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelmux.providers.claude_native import PassthroughRelay
from tests.twins import import_twin, twin_params

pytest.importorskip("pytest_benchmark")

DELTAS = 100
TWINS = twin_params("chunk_relay", "modelmux.providers.chunk_relay")


def _sse(kind: str, doc: dict[str, Any]) -> bytes:
    return (f"event: {kind}\ndata: " + json.dumps(doc, separators=(",", ":")) + "\n\n").encode()


def anthropic_events(deltas: int = DELTAS) -> list[bytes]:
    """A Messages event stream as Anthropic frames it: typed events, compact JSON."""
    start = {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1}}}
    events = [_sse("message_start", start), _sse("ping", {"type": "ping"}),
              _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})]
    events += [_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": f" word{i}"}})
               for i in range(deltas)]
    events += [_sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
               _sse("message_delta", {"type": "message_delta", "delta": {
                   "stop_reason": "end_turn", "stop_sequence": None},
                   "usage": {"output_tokens": deltas}}),
               _sse("message_stop", {"type": "message_stop"})]
    return events


def openai_events(deltas: int = DELTAS) -> list[bytes]:
    """An OpenAI chunk stream as vLLM or OpenAI frame it (``test_bench_relay``'s chunks)."""
    return [b"data: " + json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
        "model": "served-model", "choices": [{"index": 0, "delta": {"content": f" word{i}"},
                                              "logprobs": None, "finish_reason": None}],
    }, separators=(",", ":")).encode() + b"\n\n" for i in range(deltas)] + [b"data: [DONE]\n\n"]


@pytest.mark.parametrize("public", ["claude-sonnet-4-5", "alias"], ids=["same-model", "rename"])
@pytest.mark.parametrize("reads", ["per-event", "whole"])
def test_claude_passthrough(benchmark, reads: str, public: str) -> None:  # type: ignore[no-untyped-def]
    events = anthropic_events()
    pieces = events if reads == "per-event" else [b"".join(events)]

    def relay_once() -> int:
        relay = PassthroughRelay("bench", public)
        return sum(len(relay.feed(piece)) for piece in pieces)

    assert benchmark(relay_once) == len(pieces)


@pytest.mark.parametrize("reads", ["per-event", "whole"])
@pytest.mark.parametrize("twin", TWINS)
def test_openai_compatible_splice(benchmark, twin: str, reads: str) -> None:  # type: ignore[no-untyped-def]
    relay_class = import_twin(twin).ChunkRelay
    events = openai_events(DELTAS)
    pieces = events if reads == "per-event" else [b"".join(events)]

    def relay_once() -> int:
        relay = relay_class("bench", "alias")
        return sum(len(relay.feed(piece)) for piece in pieces)

    assert benchmark(relay_once) == len(events)
