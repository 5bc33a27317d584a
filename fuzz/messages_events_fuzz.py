"""Fuzz target for MessagesEventStream (atheris), with a ``--smoke N`` mode without it.

Invariant: for any OpenAI SSE body, cut anywhere, the door's decode-and-translate gives the
same frames as the body fed whole; they are Anthropic events, ``message_start`` first when
anything but an error came, and the stream ends in exactly one of ``message_stop`` or one
final ``error`` event (``feed`` and ``close`` document no exception). Run
``python fuzz/messages_events_fuzz.py`` under atheris, or with ``--smoke 10000`` anywhere.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz import fuzzing
from modelmux.codec.sse import SSEDecoder, SSEProtocolError, encode_data
from modelmux.translate.messages_events import MessagesEventStream

SEED = [
    b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}',
    b'{"choices":[{"index":0,"delta":{"content":"Hi \\u00e9"}}]}',
    b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function",'
    b'"function":{"name":"f","arguments":""}}]}}]}',
    b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":"{\\"a\\": 1}"}}]}}]}',
    b'{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}',
    b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}',
    b'{"error":{"message":"boom","type":"server_error","code":"overloaded"}}',
    b"[DONE]",
]


def translate(pieces: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    stream = MessagesEventStream(model="m", message_id="msg_fuzz")
    out: list[bytes] = []
    try:
        for piece in pieces:
            for event in decoder.feed(piece):
                out += stream.feed(event.data)
        for event in decoder.close():
            out += stream.feed(event.data)
    except SSEProtocolError:
        out += stream.fail("api_error", "bad SSE")
    out += stream.close()
    assert stream.done != stream.failed
    return out


def check(body: bytes, cuts: list[int]) -> None:
    """Raises: AssertionError: the invariant does not hold."""
    whole = translate([body])
    assert translate(fuzzing.split_at(body, sorted({c % (len(body) + 1) for c in cuts}))) == whole
    decoder = SSEDecoder()
    found = [(e.event, json.loads(e.data)) for e in decoder.feed(b"".join(whole))]
    names = [name for name, _ in found]
    assert names, "a stream always ends in message_stop or error"
    assert (names[-1] == "error") != (names[-1] == "message_stop")
    assert names.count("error") <= 1 and names.count("message_stop") <= 1
    if names != ["error"]:
        assert names[0] == "message_start"


def test_one_input(data: bytes) -> None:
    cuts = list(data[:4])
    check(data[4:], cuts)


def mutate(rng: random.Random) -> bytes:
    """The seed chunks, reordered, dropped, truncated and bit-flipped, framed as SSE."""
    payloads = [p for p in SEED if rng.random() < 0.85]
    if rng.random() < 0.3:
        rng.shuffle(payloads)
    body = bytearray(b"".join(encode_data(p) for p in payloads))
    for _ in range(rng.randint(0, 3)):
        if body:
            pos = rng.randrange(len(body))
            body[pos] ^= 1 << rng.randrange(8)
    if rng.random() < 0.2:
        del body[rng.randrange(len(body) + 1):]
    return bytes(rng.randrange(256) for _ in range(4)) + bytes(body)


def smoke(n: int, seed: int = 0) -> int:
    return fuzzing.smoke("messages_events_fuzz", n, seed, mutate, test_one_input)


if __name__ == "__main__":
    fuzzing.cli(__doc__, smoke, lambda: test_one_input)
