"""Fuzz target for MessagesStreamTranslator (atheris), with a ``--smoke N`` mode without it.

Invariant: any event sequence yields chunks or one final error payload, never an exception
(``feed`` and ``close`` document none). Run ``python fuzz/translate_stream_fuzz.py`` under
atheris, or ``python fuzz/translate_stream_fuzz.py --smoke 10000`` anywhere.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz import fuzzing
from modelmux.translate.messages_stream import MessagesStreamTranslator

EVENT_NAMES = (
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
)

SEED = [
    (
        "message_start",
        b'{"type":"message_start","message":{"usage":{"input_tokens":25,"cache_read_input_tokens":3,"output_tokens":1}}}',
    ),
    (
        "content_block_start",
        b'{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}',
    ),
    (
        "content_block_delta",
        b'{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}',
    ),
    (
        "content_block_delta",
        b'{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}',
    ),
    ("content_block_stop", b'{"type":"content_block_stop","index":0}'),
    (
        "content_block_start",
        b'{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}',
    ),
    ("ping", b'{"type":"ping"}'),
    (
        "content_block_delta",
        b'{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello \\u00e9"}}',
    ),
    ("content_block_stop", b'{"type":"content_block_stop","index":1}'),
    (
        "content_block_start",
        b'{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}',
    ),
    (
        "content_block_delta",
        b'{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"a\\": \\"b"}}',
    ),
    (
        "content_block_delta",
        b'{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"c\\"}"}}',
    ),
    ("content_block_stop", b'{"type":"content_block_stop","index":2}'),
    (
        "message_delta",
        b'{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}',
    ),
    ("error", b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'),
    ("message_stop", b'{"type":"message_stop"}'),
]


def check(events: list[tuple[str, bytes]], include_usage: bool) -> None:
    """Feed ``events`` then close, and assert the invariant on what comes out.

    Raises:
        AssertionError: the invariant does not hold (any other exception is a finding too).
    """
    translator = MessagesStreamTranslator(
        model="m", completion_id="chatcmpl-fuzz", created=0, include_usage=include_usage
    )
    out = [p for event, data in events for p in translator.feed(event, data)]
    out += translator.close()
    assert translator.done != translator.failed
    for i, payload in enumerate(out):
        assert isinstance(payload, bytes)
        decoded = json.loads(payload)
        is_error = "error" in decoded
        assert is_error == (translator.failed and i == len(out) - 1), payload
        if not is_error:
            assert decoded["id"] == "chatcmpl-fuzz" and decoded["object"] == "chat.completion.chunk"


def events_from_bytes(data: bytes) -> tuple[list[tuple[str, bytes]], bool]:
    """Decode a fuzz input: records split on a blank line, each ``name`` newline ``data``."""
    include_usage = bool(data[:1]) and data[0] & 1 == 1
    events = []
    for record in data[1:].split(b"\n\n"):
        name, _, body = record.partition(b"\n")
        events.append((name.decode("utf-8", "replace"), body))
    return events, include_usage


def events_to_bytes(events: list[tuple[str, bytes]], include_usage: bool) -> bytes:
    records = [name.encode() + b"\n" + body for name, body in events]
    return bytes([int(include_usage)]) + b"\n\n".join(records)


def test_one_input(data: bytes) -> None:
    check(*events_from_bytes(data))


def mutate(rng: random.Random) -> bytes:
    """A seed transcript, reordered, truncated, duplicated and bit-flipped at random."""
    events = list(SEED)
    if rng.random() < 0.5:
        events = [e for e in events if e[0] != "error"]
    for _ in range(rng.randint(0, 4)):
        if not events:
            break
        action = rng.randrange(5)
        i = rng.randrange(len(events))
        name, body = events[i]
        if action == 0:
            del events[i]
        elif action == 1:
            events.insert(rng.randrange(len(events) + 1), events[i])
        elif action == 2 and body:
            events[i] = (name, fuzzing.flip_bit(body, rng))
        elif action == 3:
            events[i] = (name, body[: rng.randrange(len(body) + 1)])
        else:
            events[i] = (rng.choice(EVENT_NAMES + ("", "future")), body)
    if rng.random() < 0.3:
        events = events[: rng.randrange(len(events) + 1)]
    return events_to_bytes(events, rng.random() < 0.5)


def smoke(n: int, seed: int = 0) -> int:
    return fuzzing.smoke("translate_stream_fuzz", n, seed, mutate, test_one_input)


if __name__ == "__main__":
    fuzzing.cli(__doc__, smoke, lambda: test_one_input)
