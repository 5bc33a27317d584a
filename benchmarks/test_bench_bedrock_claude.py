"""pytest-benchmark: the Messages door's per-chunk stream CPU for Claude on Bedrock, native
(InvokeModelWithResponseStream: event stream decode, base64, Anthropic SSE framing) beside
translated (ConverseStream through ``ConverseRelay``, which the door then turns back into
Anthropic events) and Anthropic's own SSE pass-through.

Run: ``python -m pytest benchmarks/test_bench_bedrock_claude.py``. Per chunk: one text delta
of the same text, fed to a live relay after the stream's first delta; ``[py]``/``[native]``
pick the event stream decoder (and Converse translator) twin.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.test_bench_converse import FRAME, TEXT, TWINS, _converse, _twin
from modelmux.providers.bedrock_claude import InvokeStreamRelay
from modelmux.providers.claude_native import PassthroughRelay
from modelmux.translate.messages_events import MessagesEventStream
from tests.fakes.answers import Answer
from tests.fakes.bedrock import chunk
from tests.fakes.claude import message_events

pytest.importorskip("pytest_benchmark")

DELTA = {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": TEXT}}
CHUNK = chunk(DELTA)
SSE = ("event: content_block_delta\ndata: " + json.dumps(DELTA) + "\n\n").encode()
START = [json.loads(f.split(b"data: ", 1)[1]) for f in message_events(Answer(text="x"), "m")][:3]


def _invoke(twin: str) -> InvokeStreamRelay:
    relay = InvokeStreamRelay("br", "claude-sonnet-4-5", frames=_twin(twin)[0]())
    for doc in START:
        relay.feed(chunk(doc))
    relay.feed(CHUNK)
    return relay


@pytest.mark.parametrize("twin", list(TWINS))
def test_native_invoke_stream_per_chunk(benchmark, twin: str) -> None:  # type: ignore[no-untyped-def]
    relay = _invoke(twin)
    assert json.loads(relay.feed(CHUNK)[0].split(b"data: ", 1)[1]) == DELTA
    assert benchmark(relay.feed, CHUNK)


@pytest.mark.parametrize("twin", list(TWINS))
def test_translated_converse_per_chunk(benchmark, twin: str) -> None:  # type: ignore[no-untyped-def]
    """ConverseRelay (Converse → OpenAI chunk) then the door's OpenAI → Anthropic event step."""
    relay = _converse(twin)
    events = MessagesEventStream(model="claude-sonnet-4-5", message_id="msg_1",
                                 stop_sequences=None)
    first = relay.feed(FRAME)[0]
    events.feed(first.removeprefix(b"data: ").rstrip())

    def step() -> list[bytes]:
        out = relay.feed(FRAME)
        return [frame for piece in out
                for frame in events.feed(piece.removeprefix(b"data: ").rstrip())]

    assert benchmark(step)


def test_anthropic_passthrough_per_chunk(benchmark) -> None:  # type: ignore[no-untyped-def]
    relay = PassthroughRelay("anthropic", "claude-sonnet-4-5")
    for frame in message_events(Answer(text="x"), "m")[:3]:
        relay.feed(frame)
    assert benchmark(relay.feed, SSE) == [SSE]
