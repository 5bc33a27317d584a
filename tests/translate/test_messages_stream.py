"""MessagesStreamTranslator: golden Anthropic SSE transcripts, edge cases and properties.

The transcripts and chunk readers live in ``tests/translate/__init__.py``. Every test runs on
both twins (pure and native); the twin-equality properties compare their payload bytes, and the
last test runs the fuzz target's smoke mode.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
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
    PARALLEL_TOOLS,
    THINKING,
    TOOL_USE,
    Event,
    content_of,
    finish_reasons,
    new,
    parse_sse,
    run,
    tool_calls_of,
    use_translator,
)
from tests.twins import import_twin, twin_params


@pytest.fixture(
    scope="module", autouse=True, params=twin_params("messages_stream", pure_twin.__name__)
)
def twin(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every test of this module on each twin (module scope: hypothesis allows no other)."""
    use_translator(import_twin(request.param).MessagesStreamTranslator)
    yield request.param
    use_translator(pure_twin.MessagesStreamTranslator)


def test_basic_text_exact_payloads() -> None:
    translator = new()
    out = [p for e, d in parse_sse(BASIC_TEXT) for p in translator.feed(e, d)]
    head = b'{"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":'
    tail = b',"finish_reason":null,"logprobs":null}]}'
    assert out == [
        head + b'{"role":"assistant","content":""}' + tail,
        head + b'{"content":"Hello"}' + tail,
        head + b'{"content":"!"}' + tail,
        head + b'{},"finish_reason":"stop","logprobs":null}]}',
    ]
    assert translator.done and not translator.failed
    assert translator.close() == []
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (25, 15)


@pytest.mark.parametrize("transcript", [BASIC_TEXT, TOOL_USE, PARALLEL_TOOLS, THINKING])
def test_every_chunk_is_a_chat_completion_chunk_of_one_response(transcript: str) -> None:
    chunks = run(parse_sse(transcript), include_usage=True)
    for chunk in chunks:
        decoded = msgspec.convert(chunk, ChatCompletionChunk)
        assert (decoded.id, decoded.created, decoded.model) == (
            "chatcmpl-abc",
            1_700_000_000,
            "gpt-4o",
        )
        assert chunk["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(finish_reasons(chunks)) == 1
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]
    assert all("usage" not in c for c in chunks[:-1])


def test_tool_use_with_arguments_split_mid_token() -> None:
    chunks = run(parse_sse(TOOL_USE))
    assert content_of(chunks) == "Okay, let's check the weather for San Francisco, CA:"
    assert tool_calls_of(chunks) == {
        0: {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "arguments": '{"location": "San Francisco, CA", "unit": "fahrenheit"}',
        }
    }
    start = next(c for c in chunks if "tool_calls" in c["choices"][0]["delta"])
    assert start["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
    ]
    assert finish_reasons(chunks) == ["tool_calls"]


def test_parallel_tool_calls_get_their_own_indexes() -> None:
    chunks = run(parse_sse(PARALLEL_TOOLS))
    calls = tool_calls_of(chunks)
    assert calls == {
        0: {"id": "toolu_A", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "toolu_B", "name": "get_time", "arguments": '{"tz": "Europe/Paris"}'},
    }
    assert content_of(chunks) == ""


def test_thinking_blocks_are_dropped_and_text_index_is_not_the_block_index() -> None:
    chunks = run(parse_sse(THINKING))
    assert content_of(chunks) == "27 * 453 = 12,231"
    assert "thinking" not in json.dumps(chunks) and "signature" not in json.dumps(chunks)
    assert finish_reasons(chunks) == ["stop"]


def test_overloaded_error_mid_stream_becomes_one_error_payload() -> None:
    translator = new(include_usage=True)
    out = [
        json.loads(p) for e, d in parse_sse(OVERLOADED_MID_STREAM) for p in translator.feed(e, d)
    ]
    assert content_of(out[:-1]) == "Once upon"
    assert out[-1] == {
        "error": {
            "message": "Overloaded",
            "type": "server_error",
            "code": "overloaded",
            "param": None,
        }
    }
    assert translator.failed and not translator.done
    assert translator.feed("content_block_delta", b'{"type":"content_block_delta"}') == []
    assert translator.close() == []


@pytest.mark.parametrize(
    ("error_type", "type_", "code"),
    [
        ("rate_limit_error", "rate_limit_error", "rate_limit_exceeded"),
        ("api_error", "upstream_error", "upstream_api_error"),
        ("overloaded_error", "server_error", "overloaded"),
        ("invalid_request_error", "invalid_request_error", "invalid_request"),
        ("something_new", "upstream_error", "bad_gateway"),
    ],
)
def test_error_event_types_are_mapped(error_type: str, type_: str, code: str) -> None:
    data = json.dumps({"type": "error", "error": {"type": error_type, "message": "m"}}).encode()
    (payload,) = run([("error", data)])
    assert payload["error"]["type"] == type_ and payload["error"]["code"] == code


def test_usage_sums_cache_tokens_into_prompt_tokens() -> None:
    chunks = run(parse_sse(TOOL_USE), include_usage=True)
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 472 + 100 + 2048,
        "completion_tokens": 89,
        "total_tokens": 472 + 100 + 2048 + 89,
        "prompt_tokens_details": {"cached_tokens": 2048, "cache_creation_tokens": 100},
    }


def test_message_delta_usage_is_cumulative_and_overrides_start_counts() -> None:
    events = parse_sse(BASIC_TEXT)
    events[6] = (
        "message_delta",
        (
            b'{"type":"message_delta","delta":{"stop_reason":"max_tokens"},'
            b'"usage":{"input_tokens":30,"cache_read_input_tokens":5,"output_tokens":20}}'
        ),
    )
    translator = new(include_usage=True)
    chunks = [json.loads(p) for e, d in events for p in translator.feed(e, d)]
    assert finish_reasons(chunks) == ["length"]
    assert chunks[-1]["usage"]["prompt_tokens"] == 35
    assert chunks[-1]["usage"]["completion_tokens"] == 20
    assert translator.usage is not None and translator.usage.total_tokens == 55


def test_no_usage_chunk_without_include_usage() -> None:
    chunks = run(parse_sse(BASIC_TEXT), include_usage=False)
    assert all(c["choices"] for c in chunks)


def test_close_before_message_stop_reports_truncation() -> None:
    translator = new()
    for event, data in parse_sse(BASIC_TEXT)[:4]:
        translator.feed(event, data)
    (payload,) = translator.close()
    assert json.loads(payload)["error"]["code"] == "upstream_stream_truncated"
    assert translator.failed and translator.close() == []


def test_close_of_an_empty_stream_reports_truncation() -> None:
    assert run([])[0]["error"]["code"] == "upstream_stream_truncated"


@pytest.mark.parametrize(
    "events",
    [
        [("message_start", b"{not json")],
        [
            ("message_start", b'{"type":"message_start","message":{}}'),
            ("content_block_delta", b"["),
        ],
        [
            (
                "content_block_delta",
                b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}',
            )
        ],
        [("message_start", b'{"message":{}}'), ("message_start", b'{"message":{}}')],
        [("message_start", b'{"message":{}}'), ("content_block_stop", b'{"index":3}')],
        [
            ("message_start", b'{"message":{}}'),
            ("content_block_delta", b'{"index":0,"delta":{"type":"text_delta","text":"x"}}'),
        ],
        [("message_start", b'{"message":{}}'), ("", b"\xff\xfe")],
        [("message_start", b'{"message":{"usage":{"input_tokens":"many"}}}')],
        [
            ("message_start", b'{"message":{}}'),
            ("content_block_start", b'{"index":0,"content_block":{"type":"text","text":"\xff"}}'),
        ],
    ],
    ids=[
        "bad-json",
        "truncated-json",
        "delta-before-start",
        "second-start",
        "stop-unknown-block",
        "delta-unknown-block",
        "bad-utf8-unnamed",
        "wrong-type",
        "bad-utf8-string",
    ],
)
def test_broken_streams_end_in_one_protocol_error(events: list[Event]) -> None:
    translator = new()
    out = [p for e, d in events for p in translator.feed(e, d)]
    assert translator.failed
    error = json.loads(out[-1])["error"]
    assert error["code"] == "upstream_protocol_error" and error["type"] == "upstream_error"
    assert all("error" not in json.loads(p) for p in out[:-1])


def test_unknown_events_are_skipped_and_missing_event_names_use_the_data_type() -> None:
    events = [("", data) for _, data in parse_sse(BASIC_TEXT)]
    events.insert(3, ("future_event", b'{"type":"future_event","x":1}'))
    chunks = run(events)
    assert content_of(chunks) == "Hello!" and finish_reasons(chunks) == ["stop"]


def test_events_after_message_stop_are_ignored() -> None:
    translator = new()
    for event, data in parse_sse(BASIC_TEXT):
        translator.feed(event, data)
    assert translator.feed("content_block_delta", b"garbage") == []
    assert translator.done and not translator.failed


def test_message_stop_without_message_delta_still_finishes() -> None:
    events = [e for e in parse_sse(BASIC_TEXT) if e[0] != "message_delta"]
    assert finish_reasons(run(events)) == ["stop"]


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("refusal", "content_filter"),
        ("max_tokens", "length"),
        ("pause_turn", "stop"),
        ("stop_sequence", "stop"),
        ("brand_new", "stop"),
    ],
)
def test_stop_reasons_in_stream(stop_reason: str, expected: str) -> None:
    events = parse_sse(BASIC_TEXT)
    events[6] = ("message_delta", json.dumps({"delta": {"stop_reason": stop_reason}}).encode())
    assert finish_reasons(run(events)) == [expected]


def test_tool_input_given_whole_in_block_start_is_sent_at_block_stop() -> None:
    events = parse_sse(BASIC_TEXT)[:1] + [
        (
            "content_block_start",
            b'{"index":0,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{"a":[1,2]}}}',
        ),
        ("content_block_stop", b'{"index":0}'),
        ("message_delta", b'{"delta":{"stop_reason":"tool_use"}}'),
        ("message_stop", b"{}"),
    ]
    assert tool_calls_of(run(events)) == {0: {"id": "t1", "name": "f", "arguments": '{"a":[1,2]}'}}


def test_text_with_json_specials_round_trips() -> None:
    text = 'quote " backslash \\ newline \n tab \t unicode é 𝄞 \u2028 <script>'
    delta = json.dumps({"index": 0, "delta": {"type": "text_delta", "text": text}}).encode()
    events = parse_sse(BASIC_TEXT)
    events[3] = ("content_block_delta", delta)
    events[4] = ("content_block_delta", b'{"index":0,"delta":{"type":"text_delta","text":""}}')
    chunks = run(events)
    assert content_of(chunks) == text
    assert len(chunks) == 3  # role, one text delta (the empty one is skipped), finish


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


_event_names = st.sampled_from(
    [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
        "",
        "other",
    ]
)
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
    assert load("translate_stream_fuzz").smoke(300, seed=1234) == 300


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
    twin: str, blocks: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    if twin == pure_twin.__name__:
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
def test_twins_agree_on_odd_deltas(twin: str, data: bytes) -> None:
    if twin == pure_twin.__name__:
        return
    events = parse_sse(BASIC_TEXT)[:2] + [("content_block_delta", data)]
    assert _outcome(_native_class(), events) == _outcome(pure_twin.MessagesStreamTranslator, events)
