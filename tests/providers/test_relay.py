"""The stream relays without sockets: every split of the upstream bytes gives the same output.

Invariant: for any cut of the upstream body into pieces, a relay emits exactly what it emits
for the whole body, ending in ``[DONE]`` on success and in one error event (no ``[DONE]``)
on failure; failures before any output become ``early_error`` instead.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux import _accel
from modelmux.codec.sse import DONE, SSEDecoder
from modelmux.errors import InvalidRequest, RateLimited, ServiceUnavailable, UpstreamError
from modelmux.providers.chunk_relay import ChunkRelay
from modelmux.providers.claude import MessagesRelay
from modelmux.providers.openai_compatible import upstream_body
from modelmux.providers.relay import Relay
from modelmux.translate import MessagesStreamTranslator
from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.claude import error_doc, message_events, sse
from tests.fakes.openai import chunk_events
from tests.fakes.openai import data as openai_data
from tests.fuzz_targets import load
from tests.twins import import_twin, twin_params


def drive(relay: Relay, pieces: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for piece in pieces:
        out += relay.feed(piece)
        if relay.finished or relay.early_error is not None:
            return out
    return out + relay.close()


def splits(body: bytes) -> list[list[bytes]]:
    """Every two-piece cut, one byte at a time, and a few random many-piece cuts."""
    cuts = [[body[:i], body[i:]] for i in range(len(body) + 1)]
    cuts.append([body[i:i + 1] for i in range(len(body))])
    rng = random.Random(5)
    for _ in range(20):
        points = sorted(rng.sample(range(1, len(body)), 12))
        cuts.append([body[a:b] for a, b in zip([0, *points], [*points, len(body)])])
    return cuts


def payloads(out: list[bytes]) -> list[Any]:
    decoder = SSEDecoder()
    events = decoder.feed(b"".join(out))
    return [e.data if e.data == b"[DONE]" else json.loads(e.data) for e in events]


RELAY_TWINS = twin_params("chunk_relay", "modelmux.providers.chunk_relay")
_RELAY_DIFF = load("relay_fuzz")  # the twins' differential check, shared with the fuzz target


@pytest.fixture(params=RELAY_TWINS)
def chunk_relay(request: pytest.FixtureRequest) -> Callable[[], ChunkRelay]:
    """A maker of fresh OpenAI relays of one twin (pure, native)."""
    cls = import_twin(request.param).ChunkRelay
    return lambda: cls("local", "public-name")


def claude_relay(include_usage: bool = True) -> MessagesRelay:
    translator = MessagesStreamTranslator(model="sonnet", completion_id="chatcmpl-1",
                                          created=1, include_usage=include_usage)
    return MessagesRelay(translator, "claude")


@pytest.mark.parametrize("answer", [TEXT, TOOLS], ids=["text", "tools"])
def test_openai_relay_is_split_invariant_and_renames_the_model(answer: Any,
        chunk_relay: Callable[[], ChunkRelay]) -> None:
    body = b"".join(chunk_events(answer, "upstream-name", include_usage=True))
    reference = drive(chunk_relay(), [body])
    assert reference[-1] == DONE
    for cut in splits(body):
        assert drive(chunk_relay(), cut) == reference
    upstream = payloads([body])
    relayed = payloads(reference)
    assert len(relayed) == len(upstream)
    for before, after in zip(upstream[:-1], relayed[:-1]):
        assert after["model"] == "public-name"
        assert {**before, "model": "public-name"} == after


def test_openai_relay_passes_payload_bytes_through(chunk_relay: Callable[[], ChunkRelay]) -> None:
    payload = (b'{"id":"x","model":"up","choices":[{"index":0,'
               b'"delta":{"content":"\\"model\\":\\"up\\""}}],"z":1}')
    out = drive(chunk_relay(), [b"data: " + payload + b"\n\n", b"data: [DONE]\n\n"])
    assert out == [b"data: " + payload.replace(b'"model":"up"', b'"model":"public-name"', 1)
                   + b"\n\n", DONE]


def test_openai_relay_error_mid_stream_ends_without_done(chunk_relay: Callable[[], ChunkRelay]) -> None:
    events = chunk_events(TEXT, "m", include_usage=False)
    error = {"error": {"message": "boom", "type": "server_error"}}
    body = b"".join(events[:3]) + openai_data(error)
    out = drive(chunk_relay(), [body + b"".join(events[3:])])
    *chunks, last = payloads(out)
    assert len(chunks) == 3 and DONE not in out
    assert last["error"]["message"] == "provider 'local': boom"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"error": {"message": "bad tools", "type": "invalid_request_error"}}, InvalidRequest),
        ({"error": {"message": "slow down", "type": "rate_limit_error"}}, RateLimited),
        ({"object": "error", "message": "too long", "type": "BadRequestError", "code": 400},
         InvalidRequest),
    ],
)
def test_openai_relay_error_first_is_early(payload: dict[str, Any], error: type,
        chunk_relay: Callable[[], ChunkRelay]) -> None:
    relay = chunk_relay()
    assert relay.feed(openai_data(payload)) == []
    assert isinstance(relay.early_error, error)
    assert relay.finished and not relay.started


def test_openai_relay_without_done_is_an_error(chunk_relay: Callable[[], ChunkRelay]) -> None:
    events = chunk_events(TEXT, "m", include_usage=False)[:-1]
    out = drive(chunk_relay(), [b"".join(events)])
    assert DONE not in out
    assert payloads(out)[-1]["error"]["code"] == "upstream_stream_truncated"
    empty = chunk_relay()
    assert drive(empty, []) == [] and isinstance(empty.early_error, UpstreamError)


def test_openai_relay_finish_reason_error_is_not_an_error_payload(chunk_relay: Callable[[], ChunkRelay]) -> None:
    payload = b'{"id":"x","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"error"}]}'
    out = drive(chunk_relay(), [b"data: " + payload + b"\n\ndata: [DONE]\n\n"])
    assert len(out) == 2 and out[-1] == DONE


def test_upstream_body_changes_only_model_and_stream() -> None:
    raw = b'{"model": "a", "stream": true, "stream_options": {"include_usage": true}, "n": 1}'
    sent = {"sent_model": "a", "sent_stream": True}
    assert upstream_body(raw, **sent, model="a", stream=True) is raw
    assert upstream_body(raw, **sent, model="b", stream=True) == (
        b'{"model":"b","stream":true,"stream_options":{"include_usage": true},"n":1}')
    assert upstream_body(raw, **sent, model="a", stream=False) == b'{"model":"a","stream":false,"n":1}'
    plain = b'{"model":"a","messages":[]}'
    unstreamed = {"sent_model": "a", "sent_stream": False}
    assert upstream_body(plain, **unstreamed, model="a", stream=False) is plain
    assert upstream_body(plain, **unstreamed, model="a", stream=True) == (
        b'{"model":"a","messages":[],"stream":true}')


@pytest.mark.parametrize("answer", [TEXT, TOOLS], ids=["text", "tools"])
def test_claude_relay_is_split_invariant(answer: Any) -> None:
    body = b"".join(message_events(answer, "claude-x"))
    reference = drive(claude_relay(), [body])
    assert reference[-1] == DONE
    for cut in splits(body):
        assert drive(claude_relay(), cut) == reference
    chunks = payloads(reference)[:-1]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == answer.text
    args: dict[int, str] = {}
    for c in chunks:
        for call in (c["choices"][0]["delta"].get("tool_calls") or []) if c["choices"] else []:
            fragment = call["function"].get("arguments", "")
            args[call["index"]] = args.get(call["index"], "") + fragment
    assert args == {i: call.arguments for i, call in enumerate(answer.tool_calls)}
    assert chunks[-1]["usage"]["completion_tokens"] == answer.completion_tokens


def test_claude_relay_overloaded_mid_stream_ends_with_error_event() -> None:
    events = message_events(TEXT, "m")
    body = b"".join(events[:5]) + sse("error", error_doc("overloaded_error", "Overloaded"))
    for cut in splits(body)[::7]:
        out = drive(claude_relay(), cut)
        assert DONE not in out
        last = payloads(out)[-1]
        assert last["error"]["code"] == "overloaded" and last["error"]["type"] == "server_error"


def test_claude_relay_error_before_output_is_early() -> None:
    relay = claude_relay()
    assert relay.feed(sse("error", error_doc("overloaded_error", "Overloaded"))) == []
    assert isinstance(relay.early_error, ServiceUnavailable)
    relay = claude_relay()
    assert relay.feed(b"event: ping\ndata: {\"type\": \"ping\"}\n\n") == []
    assert relay.early_error is None
    assert relay.feed(sse("error", error_doc("rate_limit_error", "slow"))) == []
    assert isinstance(relay.early_error, RateLimited)


def test_claude_relay_truncated_stream_is_an_error() -> None:
    events = message_events(TEXT, "m")
    out = drive(claude_relay(), [b"".join(events[:-2])])
    assert DONE not in out
    assert payloads(out)[-1]["error"]["code"] == "upstream_stream_truncated"
    relay = claude_relay()
    assert drive(relay, [events[1]]) == []  # a ping, then the body ends
    assert isinstance(relay.early_error, UpstreamError)
    assert relay.early_error.code == "upstream_stream_truncated"


_model = st.sampled_from([b'"model":"up"', b'"model": "up"', b'"model":"public-name"',
                          b'"model":"\\u0075p"', b'"model":"other"', b''])
_usage = st.sampled_from([b'', b',"usage":null',
                          b',"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}',
                          b',"usage":  \t{}',
                          b',"usage":' + b" " * 15 + b"{}", b',"usage":' + b" " * 16 + b"{}",
                          b',"usage":[]'])
_content = st.sampled_from([b'"hi"', b'"\\"model\\":\\"up\\""', b'"\\"error\\""', b'"\xc3\xa9"',
                            b'null'])


@st.composite
def _openai_events(draw: st.DrawFn) -> bytes:
    """An upstream body of chunks in many spellings, with the odd error, comment, multi-line,
    CRLF, empty or non-JSON event, usually ending in ``[DONE]``."""
    out = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["chunk"] * 6 + ["error", "comment", "multi", "crlf",
                                                     "empty", "junk", "event"]))
        body = (b'{"id":"x",' + draw(_model) + b',"choices":[{"index":0,"delta":{"content":'
                + draw(_content) + b'}}]' + draw(_usage) + b"}").replace(b",,", b",")
        if kind == "chunk":
            out.append(b"data: " + body + b"\n\n")
        elif kind == "error":
            out.append(b'data: {"error":{"message":"boom","type":"server_error"}}\n\n')
        elif kind == "comment":
            out.append(b": keep-alive\n\n")
        elif kind == "multi":
            out.append(b"data: " + body[:10] + b"\ndata: " + body[10:] + b"\n\n")
        elif kind == "crlf":
            out.append(b"data: " + body + b"\r\n\r\n")
        elif kind == "empty":
            out.append(b"data:\n\n")
        elif kind == "junk":
            out.append(b"data: not json\n\n")
        else:
            out.append(b"event: message\nid: 7\ndata:" + body + b"\n\n")
    if draw(st.booleans()):
        out.append(b"data: [DONE]\n\n")
    return b"".join(out)


@pytest.mark.skipif(_accel.pure_forced(), reason="compares the twins: needs the native one")
@settings(max_examples=300, deadline=None)
@given(body=_openai_events(), cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_relay_twins_give_the_same_bytes_and_state(body: bytes, cuts: list[int]) -> None:
    """The native relay's fused loop and the pure relay agree on every byte and on the state
    they end in (finished, started, usage, early error), however the body is cut: the fuzz
    target's check (``fuzz/relay_fuzz.py``), on hypothesis's bodies."""
    _RELAY_DIFF.check(body, cuts)
