"""pytest-benchmark: the Messages door's per-chunk stream CPU for Claude on Bedrock, native
(InvokeModelWithResponseStream: event stream decode, base64, Anthropic SSE framing) beside
translated (ConverseStream through ``ConverseRelay``, which the door then turns back into
Anthropic events) and Anthropic's own SSE pass-through.

Run: ``python -m pytest benchmarks/test_bench_bedrock_claude.py benchmarks/test_bench_passthrough.py
--benchmark-timer=time.process_time``. Per chunk: one text delta of the same text, fed to a live
relay after the stream's first delta. ``InvokeStreamRelay`` runs as its pure twin
(``py``, pure decoder) and as its native one-pass twin (``native``); the chunk is spelled as
``tests.fakes.bedrock.chunk`` writes it (``spaced``: ``json.dumps`` defaults, ``{"bytes"}``
alone) or as Bedrock does (``bedrock``: compact JSON, ``p`` padding). Per stream: a fresh relay
fed a 100-delta stream one event per read, the shape of ``test_bench_passthrough``'s splice
figures.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.test_bench_converse import FRAME, TEXT, TWINS, _converse
from benchmarks.test_bench_passthrough import anthropic_events
from modelmux import _accel
from modelmux.providers import invoke_stream
from modelmux.providers.claude_native import PassthroughRelay
from modelmux.translate.messages_events import MessagesEventStream
from tests.fakes.answers import Answer
from tests.fakes.bedrock import chunk, padded_chunk
from tests.fakes.claude import message_events
from tests.twins import import_twin

pytest.importorskip("pytest_benchmark")

DELTA = {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": TEXT}}
CHUNKS = {"spaced": chunk(DELTA), "bedrock": padded_chunk(DELTA)}
SSE = ("event: content_block_delta\ndata: " + json.dumps(DELTA) + "\n\n").encode()
START = [json.loads(f.split(b"data: ", 1)[1]) for f in message_events(Answer(text="x"), "m")][:3]
RELAYS = ["py"] + ([] if _accel.pure_forced() else ["native"])


def _relay_class(name: str) -> Callable[[], Any]:
    if name == "py":
        decoder = importlib.import_module("modelmux.codec._eventstream_py").EventStreamDecoder
        return lambda: invoke_stream.InvokeStreamRelay("br", "claude-sonnet-4-5",
                                                       frames=decoder())
    native = import_twin("modelmux._speedups.invoke_stream").InvokeStreamRelay
    return lambda: native("br", "claude-sonnet-4-5")


@pytest.mark.parametrize("spelling", list(CHUNKS))
@pytest.mark.parametrize("relay", RELAYS)
def test_native_invoke_stream_per_chunk(benchmark, relay: str, spelling: str) -> None:  # type: ignore[no-untyped-def]
    live = _relay_class(relay)()
    frame = CHUNKS[spelling]
    for doc in START:
        live.feed(chunk(doc))
    live.feed(frame)
    assert json.loads(live.feed(frame)[0].split(b"data: ", 1)[1]) == DELTA
    assert benchmark(live.feed, frame)


def _invoke_events(deltas: int = 100) -> list[bytes]:
    """``anthropic_events``' stream as Bedrock's chunks, one per event."""
    docs = [json.loads(e.split(b"data: ", 1)[1]) for e in anthropic_events(deltas)]
    return [padded_chunk(doc) for doc in docs]


@pytest.mark.parametrize("relay", RELAYS)
def test_invoke_stream_per_event(benchmark, relay: str) -> None:  # type: ignore[no-untyped-def]
    """One round: a fresh relay and 106 events, one upstream read each (per chunk = / 106)."""
    make = _relay_class(relay)
    events = _invoke_events()

    def relay_once() -> int:
        live = make()
        return sum(len(live.feed(piece)) for piece in events)

    assert benchmark(relay_once) == len(events)


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
