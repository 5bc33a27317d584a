"""MessagesStreamTranslator properties on both twins: content and arguments survive any split,
any event sequence ends in chunks or one final error, the twins give identical bytes (also on
odd deltas), and the fuzz target's smoke mode. Golden transcripts: ``test_messages_stream``.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux import _accel
from modelmux.schemas.openai_chat import ChatCompletionChunk
from modelmux.translate import messages_stream as pure_twin
from tests.fuzz_targets import load
from tests.translate import (
    BASIC_TEXT,
    OVERLOADED_MID_STREAM,
    THINKING,
    TOOL_USE,
    Event,
    content_of,
    new,
    parse_sse,
    tool_calls_of,
)
from tests.twins import import_twin

pytestmark = pytest.mark.usefixtures("messages_twin")


_text = st.text(min_size=0, max_size=40)
_tool_input = st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=10), max_size=4)
_block = st.one_of(
    st.tuples(st.just("text"), _text),
    st.tuples(st.just("tool"), st.text(min_size=1, max_size=10), _tool_input),
)


def _split(data: st.DataObject, s: str) -> list[str]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(s)), max_size=4)))
    bounds = [0, *cuts, len(s)]
    return [s[a:b] for a, b in itertools.pairwise(bounds)]


def _render(data: st.DataObject, blocks: list[tuple[Any, ...]], named: bool) -> list[Event]:
    def ev(name: str, body: dict[str, Any]) -> None:
        events.append((name if named else "", json.dumps({"type": name, **body}).encode()))
        if data.draw(st.integers(0, 9)) == 0:
            events.append(("ping", b'{"type": "ping"}'))

    events: list[Event] = []
    ev("message_start", {"message": {"usage": {"input_tokens": 5, "output_tokens": 1}}})
    for i, block in enumerate(blocks):
        if block[0] == "text":
            ev("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
            for piece in _split(data, block[1]):
                ev(
                    "content_block_delta",
                    {"index": i, "delta": {"type": "text_delta", "text": piece}},
                )
        else:
            start = {"type": "tool_use", "id": f"toolu_{i}", "name": block[1], "input": {}}
            ev("content_block_start", {"index": i, "content_block": start})
            for piece in _split(data, json.dumps(block[2])):
                delta = {"type": "input_json_delta", "partial_json": piece}
                ev("content_block_delta", {"index": i, "delta": delta})
        ev("content_block_stop", {"index": i})
    ev("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}})
    ev("message_stop", {})
    return events


@settings(max_examples=150, deadline=None)
@given(blocks=st.lists(_block, max_size=6), named=st.booleans(), data=st.data())
def test_property_content_and_arguments_survive_any_split(
    blocks: list[tuple[Any, ...]], named: bool, data: st.DataObject
) -> None:
    translator = new(include_usage=True)
    chunks = [json.loads(p) for e, d in _render(data, blocks, named) for p in translator.feed(e, d)]
    assert translator.done and translator.close() == []
    assert content_of(chunks) == "".join(b[1] for b in blocks if b[0] == "text")
    tools = [b for b in blocks if b[0] == "tool"]
    calls = tool_calls_of(chunks)
    assert sorted(calls) == list(range(len(tools)))
    for index, (_, name, tool_input) in enumerate(tools):
        assert calls[index]["name"] == name
        assert json.loads(calls[index]["arguments"]) == tool_input
    assert len({c["id"] for c in calls.values()}) == len(tools)
    assert chunks[-1]["usage"]["completion_tokens"] == 9


_FUZZ = load("translate_stream_fuzz")
_event_names = st.sampled_from([*_FUZZ.EVENT_NAMES, "", "other"])
_payloads = st.sampled_from(
    [data for _, data in parse_sse(TOOL_USE + "\n" + THINKING + "\n" + OVERLOADED_MID_STREAM)]
    + [b"", b"{", b"null", b"[]", b'{"index":-1,"delta":{}}', b'{"index":0}', b"\xff"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_event_names, _payloads | st.binary(max_size=30)), max_size=25))
def test_property_any_event_sequence_yields_chunks_or_one_final_error(events: list[Event]) -> None:
    translator = new(include_usage=True)
    out = [p for e, d in events for p in translator.feed(e, d)] + translator.close()
    decoded = [json.loads(p) for p in out]
    errors = [i for i, d in enumerate(decoded) if "error" in d]
    assert errors == ([len(decoded) - 1] if translator.failed else [])
    assert translator.done != translator.failed
    for chunk in decoded[: len(decoded) - len(errors)]:
        msgspec.convert(chunk, ChatCompletionChunk)


def test_fuzz_target_smoke() -> None:
    assert _FUZZ.smoke(300, seed=1234) == 300


_nasty_text = st.text(
    st.characters(blacklist_categories=("Cs",))
    | st.sampled_from(['"', "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "𝄞", "\u2028"]),
    max_size=30,
)
_twin_block = st.one_of(
    st.tuples(st.just("text"), _nasty_text),
    st.tuples(st.just("tool"), st.text(min_size=1, max_size=5), _tool_input | _nasty_text),
)
_string_bytes = st.lists(
    st.sampled_from(
        [b"a", b"\\", b'"', b"\\u", b"d800", b"dc00", b"00e9", b"00", b"\\/", b"\\n", b"\\x"]
        + [b"\xff", b"\xc3", b"\xa9", b"\xed\xa0\x80", b"\xe0\x80\x80", b"\xf4\x90\x80\x80"]
        + [b"\x01", b"\t", b"\xf0\x9f\x98\x80", b"\xe2\x80\xa8", b"\x7f", b"}", b" "]
    ),
    max_size=8,
).map(b"".join)


def _twin_events(data: st.DataObject, blocks: list[tuple[Any, ...]]) -> list[Event]:
    """A stream in random JSON styles (spacing, key order, ASCII escapes), names and splits."""

    def ev(name: str, body: dict[str, Any]) -> None:
        body = {"type": name, **body}
        keys = data.draw(st.permutations(list(body)))
        separators = data.draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
        text = json.dumps(
            {k: body[k] for k in keys},
            separators=separators,
            ensure_ascii=data.draw(st.booleans()),
        )
        named = data.draw(st.integers(0, 4)) > 0
        events.append((name if named else "", text.encode()))

    events: list[Event] = []
    ev("message_start", {"message": {"usage": {"input_tokens": 5, "output_tokens": 1}}})
    for i, block in enumerate(blocks):
        if block[0] == "text":
            ev("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
            pieces = _split(data, block[1])
            kind, key = "text_delta", "text"
        else:
            start = {"type": "tool_use", "id": f"toolu_{i}", "name": block[1], "input": {}}
            ev("content_block_start", {"index": i, "content_block": start})
            raw = block[2] if isinstance(block[2], str) else json.dumps(block[2])
            pieces = _split(data, raw)
            kind, key = "input_json_delta", "partial_json"
        for piece in pieces:
            ev("content_block_delta", {"index": i, "delta": {"type": kind, key: piece}})
            if data.draw(st.integers(0, 3)) == 0:  # raw string bytes into the open block
                raw = b'{"index":%d,"delta":{"type":"%s","%s":"%s"}}' % (
                    i,
                    kind.encode(),
                    key.encode(),
                    data.draw(_string_bytes),
                )
                events.append(("content_block_delta", raw))
        ev("content_block_stop", {"index": i})
    ev("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}})
    ev("message_stop", {})
    for _ in range(data.draw(st.integers(0, 2))):  # out-of-order events
        i = data.draw(st.integers(0, len(events) - 1))
        j = data.draw(st.integers(0, len(events) - 1))
        events[i], events[j] = events[j], events[i]
    for _ in range(data.draw(st.integers(0, 2))):  # deltas with raw string bytes
        name = data.draw(st.sampled_from(["content_block_delta", ""]))
        kind, key = data.draw(
            st.sampled_from([("text_delta", b"text"), ("input_json_delta", b"partial_json")])
        )
        raw = b'{"type":"content_block_delta","index":%d,"delta":{"type":"%s","%s":"%s"}}' % (
            data.draw(st.integers(0, max(len(blocks), 1))),
            kind.encode(),
            key,
            data.draw(_string_bytes),
        )
        events.insert(data.draw(st.integers(0, len(events))), (name, raw))
    return events


def _outcome(cls: type[Any], events: list[Event]) -> tuple[Any, ...]:
    translator = cls(model="gpt-4o", completion_id="chatcmpl-abc", created=1, include_usage=True)
    out = [translator.feed(e, d) for e, d in events] + [translator.close()]
    return out, translator.done, translator.failed, translator.usage


def _native_class() -> type[Any]:
    if _accel.pure_forced():
        pytest.skip("MODELMUX_PURE_PYTHON=1: only the pure twin runs")
    return import_twin("modelmux._speedups.messages_stream").MessagesStreamTranslator


@settings(max_examples=300, deadline=None)
@given(blocks=st.lists(_twin_block, max_size=4), data=st.data())
def test_property_twins_produce_identical_bytes(
    messages_twin: str, blocks: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    if messages_twin == pure_twin.__name__:
        return  # one comparison is enough; it runs under the native parameter
    events = _twin_events(data, blocks)
    assert _outcome(_native_class(), events) == _outcome(pure_twin.MessagesStreamTranslator, events)


@pytest.mark.parametrize(
    "data",
    [
        b'{"index":0,"delta":{"type":"text_delta","text":"\\u00e9\\/\\n"}}',
        b'{"index":0,"delta":{"type":"text_delta","text":"\\ud800"}}',
        b'{"index":0,"delta":{"type":"text_delta","text":"a\\/b"}}',
        b'{"index":0,"delta":{"type":"text_delta","text":"\xff"}}',
        b'{"index":0,"delta":{"type":"text_delta","text":"a\x01"}}',
        b'{"index":0,"delta":{"type":"text_delta","text":"x","text":"y"}}',
        b'{"index":0,"index":0,"delta":{"type":"text_delta","text":"x"}}',
        b'{"index":00,"delta":{"type":"text_delta","text":"x"}}',
        b'{"index":0.0,"delta":{"type":"text_delta","text":"x"}}',
        b'{"index":-0,"delta":{"type":"text_delta","text":"x"}}',
        b'{"index":0,"delta":{"type":"text_delta","text":"x"}} x',
        b'{"index":0,"delta":{"type":"text_delta","text":"x"},"extra":[1]}',
        b'{"index":0,"delta":{"type":"input_json_delta","partial_json":"x"}}',
        b'{"index":0,"delta":{"type":"text_delta","partial_json":"x"}}',
        b'{"index":0,"delta":{"type":"text_delta"}}',
        b'{"index":0,"delta":{"type":"text_delta","text":"x"}',
        b'  {"delta":{"text":"\xc3\xa9 \\"q\\" \\\\","type":"text_delta"},"index":0}\r\n',
    ],
)
def test_twins_agree_on_odd_deltas(messages_twin: str, data: bytes) -> None:
    if messages_twin == pure_twin.__name__:
        return
    events = parse_sse(BASIC_TEXT)[:2] + [("content_block_delta", data)]
    assert _outcome(_native_class(), events) == _outcome(pure_twin.MessagesStreamTranslator, events)
