"""pytest-benchmark: the ``openai_compatible`` stream relay, both twins.

Run: ``python -m pytest benchmarks/test_bench_relay.py``. One round is a fresh relay fed a
whole 100-chunk OpenAI stream (what one upstream read holds under load) and ``[DONE]``; with
``rename`` the public model differs from the one the upstream reports, so every chunk's
``model`` member is rewritten, as when a client uses an alias.
"""

from __future__ import annotations

import json

import pytest

from tests.twins import import_twin, twin_params

pytest.importorskip("pytest_benchmark")

TWINS = twin_params("chunk_relay", "modelmux.providers.chunk_relay")


def stream_body(chunks: int = 100) -> bytes:
    """An OpenAI chunk stream as vLLM or OpenAI frame it: one compact JSON per ``data:``."""
    events = [
        b"data: " + json.dumps({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
            "model": "served-model", "choices": [{"index": 0, "delta": {"content": f" word{i}"},
                                                  "logprobs": None, "finish_reason": None}],
        }, separators=(",", ":")).encode() + b"\n\n"
        for i in range(chunks)
    ]
    return b"".join(events) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("public", ["served-model", "alias"], ids=["same-model", "rename"])
@pytest.mark.parametrize("twin", TWINS)
def test_relay_100_chunk_stream(benchmark, twin: str, public: str) -> None:  # type: ignore[no-untyped-def]
    relay_class = import_twin(twin).ChunkRelay
    body = stream_body()

    def relay_once() -> list[bytes]:
        return relay_class("bench", public).feed(body)

    out = benchmark(relay_once)
    assert len(out) == 101 and out[-1] == b"data: [DONE]\n\n"
