"""Claude's InvokeModelWithResponseStream answer relayed as Anthropic SSE, by both twins: the
pure reference (``modelmux.providers.invoke_stream``) and the native one-pass relay
(``modelmux._speedups.invoke_stream``), compared with each other over random event sequences
and random cuts."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux import _accel
from modelmux.codec import _eventstream_py
from modelmux.codec.eventstream import EventStreamError, encode_message
from modelmux.providers import bedrock_claude, invoke_stream
from tests.fakes.bedrock import chunk, exception, padded_chunk
from tests.messages.test_bedrock_native import THINKING
from tests.providers.invoke_stream_diff import MODEL, check, run
from tests.twins import import_twin, twin_params

PURE = "modelmux.providers.invoke_stream"
CHUNK_HEADERS = {":event-type": "chunk", ":content-type": "application/json",
                 ":message-type": "event"}


@pytest.fixture(params=twin_params("invoke_stream", PURE))
def make(request: pytest.FixtureRequest) -> Any:
    """A maker of relays of one twin (the pure one over the pure decoder)."""
    if request.param == PURE:
        return lambda: invoke_stream.InvokeStreamRelay(
            "br", MODEL, frames=_eventstream_py.EventStreamDecoder())
    native = import_twin(request.param).InvokeStreamRelay
    return lambda: native("br", MODEL)


def raw_chunk(data: bytes, part: str = '{{"bytes":"{}"}}') -> bytes:
    """A ``chunk`` carrying ``data`` as it is (valid JSON or not), in the ``part`` spelling."""
    return encode_message(CHUNK_HEADERS, part.format(base64.b64encode(data).decode()).encode())


def relay_all(make: Any, body: bytes) -> tuple[bytes, Any]:
    relay = make()
    out = b"".join(relay.feed(body)) + b"".join(relay.close())
    return out, relay


def compact(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def test_the_face_picks_the_native_twin_unless_pure_is_forced() -> None:
    if _accel.pure_forced():
        assert bedrock_claude.InvokeStreamRelay is invoke_stream.InvokeStreamRelay
        return
    native = import_twin("modelmux._speedups.invoke_stream")
    assert bedrock_claude.InvokeStreamRelay is native.InvokeStreamRelay
    assert issubclass(native.InvokeStreamRelay, invoke_stream.InvokeStreamRelay)


def test_bedrock_spelled_events_pass_as_sent_and_are_read(make: Any) -> None:
    out, relay = relay_all(make, b"".join(padded_chunk(doc) for doc in THINKING))
    frames = out.split(b"\n\n")[:-1]
    assert len(frames) == len(THINKING)
    for frame, doc in zip(frames[1:], THINKING[1:], strict=True):
        assert frame == b"event: " + doc["type"].encode() + b"\ndata: " + compact(doc)
    start = json.loads(frames[0].split(b"data: ", 1)[1])
    assert start["message"]["model"] == MODEL and frames[0].startswith(b"event: message_start\n")
    assert relay.usage == (35, 21) and relay.cache == (5, 0) and relay.finished
    assert relay.early_error is None and relay.started


@pytest.mark.parametrize("part", ['{{"bytes":"{}"}}', '{{"bytes": "{}" }}',
                                  '{{"bytes":"{}","p":"abc"}}', '{{"p":"ab","bytes":"{}"}}',
                                  '{{"p":"","bytes":"{}","q":"x y"}}'])
@pytest.mark.parametrize("text", ["", "a", "ab", "abc", "é\u2028", "line\nbreak"])
def test_every_part_spelling_and_padding_is_read(make: Any, part: str, text: str) -> None:
    doc = {"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": text}}
    relay = make()
    relay.feed(chunk(THINKING[0]))
    for data in (compact(doc), json.dumps(doc).encode(), b'{ "type" : "content_block_delta"'
                                                         + compact(doc)[29:]):
        assert relay.feed(raw_chunk(data, part)) == [
            b"event: content_block_delta\ndata: " + data + b"\n\n"]


def test_an_event_with_a_raw_line_break_goes_out_on_one_line(make: Any) -> None:
    relay = make()
    relay.feed(chunk(THINKING[0]))
    assert relay.feed(raw_chunk(b'{"type":"ping",\n "n": [1,\r\n 2]}')) == [
        b'event: ping\ndata: {"type":"ping","n":[1,2]}\n\n']
    assert relay.feed(raw_chunk(b'{"n": 1, "type": "later"}')) == [
        b'event: later\ndata: {"n": 1, "type": "later"}\n\n']


@pytest.mark.parametrize("data", [b'{"type":"ping",\n garbage', b'{"n":1,"type":"a\\nb"}',
                                  b'{"type":"a\\u000ab"}', b"[1, 2]", b'{"type": 3}', b"",
                                  b'{"type":"\xff"}'])
def test_an_unreadable_event_is_an_error_before_or_after_the_start(make: Any,
                                                                   data: bytes) -> None:
    out, early = relay_all(make, raw_chunk(data))
    assert out == b"" and early.early_error.code == "upstream_protocol_error"
    assert not early.started
    late = make()
    first = late.feed(chunk(THINKING[0]))
    out = late.feed(raw_chunk(data) + chunk(THINKING[1]))
    assert first and late.finished and out == [out[-1]]
    assert out[-1].startswith(b"event: error\ndata: ") and b"unreadable chunk" in out[-1]


@pytest.mark.parametrize("b64", ["e30", "e30=x", "=e30", "e3 0", "e30==", "eyJ0eXBlIjoicGluZyJ9?"])
def test_base64_that_strict_decoding_refuses_is_unreadable(make: Any, b64: str) -> None:
    frame = encode_message(CHUNK_HEADERS, b'{"bytes":"' + b64.encode() + b'"}')
    relay = make()
    assert relay.feed(frame) == [] and relay.early_error.code == "upstream_protocol_error"


@pytest.mark.parametrize("text", ["", "a", "ab"])  # no padding, "==", "="
def test_twins_agree_on_every_change_to_the_last_base64_quads(text: str) -> None:
    b64 = base64.b64encode(compact({"type": "ping", "t": text})).decode()
    for pos in range(len(b64) - 8, len(b64) + 1):
        for char in '=_-!A/+ "':
            damaged = b64[:pos] + char + b64[pos + 1:]
            check(chunk(THINKING[0]) + encode_message(
                CHUNK_HEADERS, b'{"bytes":"' + damaged.encode() + b'"}'), [])


def test_exceptions_and_other_messages(make: Any) -> None:
    early = make()
    assert early.feed(exception("throttlingException", "slow down")) == []
    assert early.early_error is not None and early.early_error.status == 429
    late = make()
    other = encode_message({":event-type": "initial-response", ":message-type": "event"}, b"{}")
    out = late.feed(other + chunk(THINKING[0]) + other
                    + exception("internalServerException", "boom") + chunk(THINKING[1]))
    assert len(out) == 2 and out[-1].startswith(b"event: error\ndata: ") and late.finished
    assert late.early_error is None and b"boom" in out[-1]
    assert late.feed(chunk(THINKING[1])) == [] and late.close() == []


def test_an_error_event_first_is_early_and_after_the_start_ends_the_stream(make: Any) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    early = make()
    assert early.feed(padded_chunk(error)) == [] and "busy" in early.early_error.message
    late = make()
    out = late.feed(padded_chunk(THINKING[0]) + padded_chunk(error) + padded_chunk(THINKING[1]))
    assert out[-1] == b"event: error\ndata: " + compact(error) + b"\n\n" and late.finished


def test_framing_errors_come_after_the_good_messages(make: Any) -> None:
    good = chunk(THINKING[0]) + chunk(THINKING[1])
    bad = bytearray(chunk(THINKING[2]))
    bad[-1] ^= 1
    relay = make()
    assert len(relay.feed(good + bytes(bad))) == 2
    with pytest.raises(EventStreamError, match="message CRC mismatch"):
        relay.feed(b"")
    with pytest.raises(EventStreamError, match="message CRC mismatch"):
        relay.close()
    cut = make()
    cut.feed(good + chunk(THINKING[2])[:-1])
    with pytest.raises(EventStreamError, match=r"ended inside a message \(\d+ bytes left over"):
        cut.close()
    bad_prelude = make()
    with pytest.raises(EventStreamError, match="prelude CRC mismatch"):
        bad_prelude.feed(b"\x00\x00\x00\x20" + bytes(12))


def test_an_event_too_large_for_the_native_buffer_takes_the_pure_path(make: Any) -> None:
    doc = {"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": "x" * 70_000}}
    relay = make()
    relay.feed(padded_chunk(THINKING[0]))
    assert relay.feed(padded_chunk(doc)) == [b"event: content_block_delta\ndata: "
                                              + compact(doc) + b"\n\n"]


@pytest.mark.skipif(_accel.pure_forced(), reason="MODELMUX_PURE_PYTHON=1: no native twin")
def test_the_native_twin_given_a_decoder_uses_it() -> None:
    native = import_twin("modelmux._speedups.invoke_stream").InvokeStreamRelay
    body = b"".join(chunk(doc) for doc in THINKING)
    given_decoder = run(lambda: native("br", MODEL, frames=_eventstream_py.EventStreamDecoder()),
                        [body])
    assert given_decoder == run(lambda: native("br", MODEL), [body])


NAMES = st.sampled_from(["content_block_delta", "ping", "content_block_start",
                         "content_block_stop", "x_future", "message_delta", "message_stop",
                         "message_start", "error"])
DOCS = st.one_of(
    st.sampled_from(THINKING),
    st.builds(lambda t: {"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": t}}, st.text(max_size=40)),
    st.builds(lambda name, n: {"type": name, "n": n, "usage": {"output_tokens": n}},
              NAMES, st.integers(0, 99)),
    st.just({"type": "error", "error": {"type": "api_error", "message": "x"}}),
)


def _encoded(doc: dict[str, Any], how: int, pad: str) -> bytes:
    if how == 0:
        return chunk(doc)
    if how == 1:
        return padded_chunk(doc, pad)
    text = json.dumps(doc, ensure_ascii=False, indent=1 if how == 2 else None)
    return raw_chunk(text.encode(), '{{"p":"' + pad + '","bytes":"{}"}}')


ITEMS = st.one_of(
    st.builds(_encoded, DOCS, st.integers(0, 3), st.text("abcXYZ09", max_size=12)),
    st.builds(lambda kind, text: exception(kind, text),
              st.sampled_from(["throttlingException", "modelStreamErrorException"]),
              st.text(max_size=10)),
    st.just(encode_message({":event-type": "initial-response", ":message-type": "event"},
                           b"{}")),
)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(ITEMS, max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_twins_agree_on_any_event_sequence_and_cuts(
        items: list[bytes], cuts: list[int]) -> None:
    check(b"".join(items), cuts)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(ITEMS, min_size=1, max_size=8),
       raw=st.lists(st.binary(max_size=40), max_size=3),
       flip=st.none() | st.tuples(st.integers(min_value=0), st.integers(0, 7)),
       cut_end=st.none() | st.integers(min_value=0),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_twins_agree_on_damaged_streams(items: list[bytes], raw: list[bytes],
                                        flip: tuple[int, int] | None, cut_end: int | None,
                                        cuts: list[int]) -> None:
    """Arbitrary event bytes, a flipped bit (CRC errors) and a truncated body."""
    body = bytearray(b"".join(items) + b"".join(raw_chunk(r) for r in raw))
    if flip is not None:
        body[flip[0] % len(body)] ^= 1 << flip[1]
    if cut_end is not None:
        del body[cut_end % (len(body) + 1):]
    check(bytes(body), cuts)
