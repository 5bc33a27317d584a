"""The Bedrock stream twins against each other: for any event stream, cut anywhere, the native
decoder and translator give the client exactly the bytes, usage and errors the pure ones give.

The payloads are written the ways a JSON encoder may write them (escaped or raw non-ASCII, spaced
or compact, any key order, with and without Bedrock's ``p`` padding) and broken the ways the
native scanner must notice (lone surrogates, leading zeros, floats, stray keys, cut JSON).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux import _accel
from modelmux.codec import _eventstream_py
from modelmux.codec.eventstream import EventStreamError, encode_message
from modelmux.providers.bedrock import ConverseRelay
from modelmux.translate import _converse_stream_py
from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.bedrock import stream_events
from tests.twins import import_twin

PURE = (_converse_stream_py.ConverseStreamTranslator, _eventstream_py.EventStreamDecoder)


@pytest.fixture(scope="module")
def native() -> tuple[type, type]:
    if _accel.pure_forced():
        pytest.skip("MODELMUX_PURE_PYTHON=1: the native twins are off")
    return (import_twin("modelmux._speedups.converse_stream").ConverseStreamTranslator,
            import_twin("modelmux._speedups.eventstream").EventStreamDecoder)


def frame(kind: str, payload: bytes) -> bytes:
    return encode_message({":event-type": kind, ":content-type": "application/json",
                           ":message-type": "event"}, payload)


def write(doc: dict[str, Any], style: tuple[bool, bool, list[int]]) -> bytes:
    ascii_only, spaced, order = style
    keys = list(doc)
    keys = [keys[i % len(keys)] for i in order if keys] + keys
    ordered = {k: doc[k] for k in dict.fromkeys(keys)}
    return json.dumps(ordered, ensure_ascii=ascii_only,
                      separators=(", ", ": ") if spaced else (",", ":")).encode()


styles = st.tuples(st.booleans(), st.booleans(), st.lists(st.integers(0, 3), max_size=3))
pads = st.sampled_from([None, "", "abc", "abcdefghijklmnop", "\u00e9"])
ODD = [b'{"delta":{"text":"\\ud800"},"contentBlockIndex":0}',
       b'{"delta":{"text":"a\\/b\\u0041"},"contentBlockIndex":0}',
       b'{"delta":{"text":"x"},"contentBlockIndex":00}',
       b'{"delta":{"text":"x"},"contentBlockIndex":0.0}',
       b'{"delta":{"text":"x"},"contentBlockIndex":1e0}',
       b'{"delta":{"text":"x"},"contentBlockIndex":-0}',
       b'{"delta":{"text":"x","toolUse":{"input":"y"}},"contentBlockIndex":0}',
       b'{"delta":{"text":"x"},"contentBlockIndex":0,"extra":1}',
       b'{"delta":{"text":"x"},"delta":{"text":"y"},"contentBlockIndex":0}',
       b'{"delta":{"text":"x"},"contentBlockIndex":0,"p":"\\u00e9"}',
       b'{"delta":{"text":"x"},"contentBlockIndex":0} x',
       b'{"delta":{"text":"\xff"},"contentBlockIndex":0}',
       b'{"delta":{"text":"a\x01"},"contentBlockIndex":0}',
       b'{"delta":{"toolUse":{"input":"\\"k\\": 1"}},"contentBlockIndex":1}',
       b'{"delta":{"toolUse":{"input":""}},"contentBlockIndex":1}',
       b'{"delta":{"text":""},"contentBlockIndex":0}',
       b'{"delta":{"text":"x"}}',
       b'{"delta":{"text":"x"},"contentBlockIndex":0',
       b' {"delta" : { "text" : "x\\n" } , "contentBlockIndex" : 0 } ']


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 9))
    index = draw(st.sampled_from([0, 1, 2, 10]))
    pad = draw(pads)
    extra = {} if pad is None else {"p": pad}
    if choice <= 3:
        doc = {"delta": {"text": draw(st.text(max_size=12))}, "contentBlockIndex": index}
        return frame("contentBlockDelta", write({**doc, **extra}, draw(styles)))
    if choice == 4:
        doc = {"delta": {"toolUse": {"input": draw(st.text(max_size=12))}},
               "contentBlockIndex": index}
        return frame("contentBlockDelta", write({**doc, **extra}, draw(styles)))
    if choice == 5:
        name = draw(st.sampled_from(["f", "json_response"]))
        doc = {"start": {"toolUse": {"toolUseId": f"t{index}", "name": name}},
               "contentBlockIndex": index}
        return frame("contentBlockStart", write(doc, draw(styles)))
    if choice == 6:
        return frame("contentBlockDelta", draw(st.sampled_from(ODD)))
    if choice == 7:
        reason = draw(st.sampled_from(["end_turn", "tool_use", "max_tokens", None]))
        return frame("messageStop", json.dumps({"stopReason": reason}).encode())
    if choice == 8:
        return frame("metadata", b'{"usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5}}')
    return draw(st.sampled_from([
        frame("messageStart", b'{"role":"assistant"}'), frame("contentBlockStop", b"{}"),
        encode_message({":message-type": "exception", ":exception-type": "throttlingException"},
                       b'{"message":"slow"}'),
        encode_message({":message-type": "error", ":error-code": "E"}, b""),
        frame("somethingNew", b'{"x":1}')]))


def run(twins: tuple[type, type], pieces: list[bytes], include_usage: bool,
        json_tool: str | None) -> tuple[object, ...]:
    translator, decoder = twins
    relay = ConverseRelay(translator(model="m", completion_id="chatcmpl-t", created=1,
                                     include_usage=include_usage, json_tool=json_tool),
                          decoder())
    out: list[bytes] = []
    try:
        for piece in pieces:
            out += relay.feed(piece)
        out += relay.close()
    except EventStreamError as exc:
        return b"".join(out), "EventStreamError", exc.message
    early = relay.early_error
    return (b"".join(out), relay.usage, relay.started,
            None if early is None else (type(early).__name__, early.message))


@settings(max_examples=400, deadline=None)
@given(st.lists(messages(), max_size=14), st.booleans(), st.sampled_from([None, "json_response"]),
       st.data())
def test_any_stream_any_split_same_client_bytes(native: tuple[type, type], body: list[bytes],
                                                include_usage: bool, json_tool: str | None,
                                                data: st.DataObject) -> None:
    raw = bytearray(frame("messageStart", b'{"role":"assistant"}') + b"".join(body))
    if data.draw(st.integers(0, 9)) == 0:
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    if data.draw(st.integers(0, 9)) == 0:
        del raw[data.draw(st.integers(0, len(raw))):]
    wire = bytes(raw)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    pieces = [wire[a:b] for a, b in itertools.pairwise([0, *cuts, len(wire)])]
    expected = run(PURE, [wire], include_usage, json_tool)
    assert run(native, pieces, include_usage, json_tool) == expected
    assert run(PURE, pieces, include_usage, json_tool) == expected


def test_the_native_path_runs(native: tuple[type, type], monkeypatch: pytest.MonkeyPatch) -> None:
    """Most deltas of a text and tool stream skip the pure twin (a regression would be slow,
    not wrong, so it is checked here)."""
    calls: list[object] = []
    pure_feed = _converse_stream_py.ConverseStreamTranslator.feed

    def counted(self: Any, message: Any) -> list[bytes]:
        calls.append(message.event)
        return pure_feed(self, message)

    monkeypatch.setattr(_converse_stream_py.ConverseStreamTranslator, "feed", counted)
    for answer in (TEXT, TOOLS):
        calls.clear()
        events = stream_events(answer)
        assert run(native, [b"".join(events)], True, None)[1] is not None
        deltas = sum(1 for e in events if b"contentBlockDelta" in e)
        assert calls.count("contentBlockDelta") < deltas / 2, (calls, deltas)
