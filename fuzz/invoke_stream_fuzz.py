"""Fuzz target for Claude's InvokeModelWithResponseStream relay (event stream in, Anthropic SSE out).

Invariant: for any upstream body, fed whole, cut anywhere or one byte at a time, the pure and
the native ``InvokeStreamRelay`` twins give the same frames call for call and the same end state;
only ``EventStreamError`` escapes; every frame is one ``event:`` line and one ``data:`` line, and
a finished stream ends in one ``message_stop`` or ``error`` event, or holds an early error and
wrote nothing. The check lives in ``tests/providers/invoke_stream_diff.py`` (shared with the
hypothesis test). Runs under atheris (``python fuzz/invoke_stream_fuzz.py``) or without it
(``--smoke N``); without a native build only the pure twin runs. The first byte seeds the cuts.
"""

from __future__ import annotations

import base64
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import fuzzing
from modelmux.codec.eventstream import encode_message
from tests.providers.invoke_stream_diff import TWINS, check

CHUNK = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
EVENTS: list[bytes] = [
    (b'{"type":"message_start","message":{"id":"m","type":"message","role":"assistant",'
     b'"model":"x","content":[],"usage":{"input_tokens":3,"output_tokens":1,'
     b'"cache_read_input_tokens":2}}}'),
    b'{"type":"ping"}',
    b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
    b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"H\\u00e9"}}',
    b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}}',
    (b'{"type":"content_block_delta",\n"index":0,"delta":{"type":"input_json_delta",'
     b'"partial_json":"{\\"a\\": 1"}}'),
    b'{"index":0,"type":"content_block_stop"}',
    b'{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}',
    b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}',
    b'{"type":"message_stop"}',
]
PARTS = ['{{"bytes":"{}"}}', '{{"bytes":"{}","p":"abcdef"}}', '{{"p":"ab","bytes":"{}"}}',
         '{{"bytes": "{}"}}']


def _message(rng: random.Random, event: bytes) -> bytes:
    if rng.random() < 0.1:
        return encode_message({":message-type": "exception",
                               ":exception-type": "throttlingException"}, b'{"message":"slow"}')
    if rng.random() < 0.05:
        return encode_message({":event-type": "initial-response", ":message-type": "event"},
                              b"{}")
    text = base64.b64encode(event).decode()
    if rng.random() < 0.1 and text:  # base64 strict decoding refuses
        pos = rng.randrange(len(text))
        text = text[:pos] + rng.choice("=-_ !") + text[pos + 1:]
    return encode_message(CHUNK, rng.choice(PARTS).format(text).encode())


def mutate(rng: random.Random) -> bytes:
    """Seed events reordered, dropped, doubled, cut or bit-flipped before they are framed,
    sometimes the framed bytes flipped or cut (CRC and length errors)."""
    events = list(EVENTS)
    if rng.random() < 0.3:
        rng.shuffle(events)
    fuzzing.damage(events, rng)
    stream = bytearray(b"".join(_message(rng, e) for e in events))
    if stream and rng.random() < 0.15:
        stream[rng.randrange(len(stream))] ^= 1 << rng.randrange(8)
    if rng.random() < 0.15:
        del stream[rng.randrange(len(stream) + 1):]
    return bytes([rng.randrange(256)]) + bytes(stream)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    rng = random.Random(data[0])
    check(data[1:], [rng.randint(0, 1 << 16) for _ in range(rng.randint(0, 6))])


def smoke(n: int, seed: int = 0) -> int:
    return fuzzing.smoke("invoke_stream_fuzz", n, seed, mutate, test_one_input,
                         note=f" ({len(TWINS)} twins)")


if __name__ == "__main__":
    # the relay, decoder and JSON helpers are already imported above
    fuzzing.cli(__doc__, smoke, lambda: test_one_input, instrument="all")
