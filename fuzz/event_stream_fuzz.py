"""Fuzz target for the Gemini and Cohere stream translators behind ``EventRelay``.

Invariant: for any upstream body, fed whole or cut anywhere, the relay returns the same client
bytes and ends in the same state; only ``SSEProtocolError`` escapes; after ``close()`` the relay
is finished, and its output ends with ``[DONE]`` or one error event, or it holds an early
error and output nothing. Runs under atheris (``python fuzz/event_stream_fuzz.py``) or without
it (``--smoke N``). The first input byte picks the format and ``include_usage``.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import fuzzing  # noqa: E402
from modelmux.codec.sse import SSEProtocolError  # noqa: E402
from modelmux.providers.event_relay import EventRelay, EventTranslator  # noqa: E402
from modelmux.translate.cohere_stream import CohereStreamTranslator  # noqa: E402
from modelmux.translate.gemini_stream import GeminiStreamTranslator  # noqa: E402

FORMATS: dict[str, Callable[..., EventTranslator]] = {"cohere": CohereStreamTranslator,
                                                      "gemini": GeminiStreamTranslator}

SEEDS: dict[str, list[bytes]] = {
    "cohere": [
        b'{"type":"message-start","id":"r","delta":{"message":{"role":"assistant"}}}',
        b'{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hi"}}}}',
        b'{"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will"}}}',
        b'{"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"t1",'
        b'"type":"function","function":{"name":"f","arguments":""}}}}}',
        b'{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":'
        b'{"arguments":"{\\"a\\": 1}"}}}}}',
        b'{"type":"tool-call-end","index":0}',
        b'{"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"billed_units":'
        b'{"input_tokens":3,"output_tokens":2}}}}',
    ],
    "gemini": [
        b'{"candidates":[{"content":{"parts":[{"text":"Hm","thought":true}]},"index":0}]}',
        b'{"candidates":[{"content":{"role":"model","parts":[{"text":"Hello \\u00e9"}]}}]}',
        b'{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"a":1}}}]},'
        b'"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,'
        b'"candidatesTokenCount":2,"thoughtsTokenCount":1}}',
        b'{"promptFeedback":{"blockReason":"SAFETY"}}',
        b'{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}',
    ],
}


def _run(fmt: str, include_usage: bool, pieces: list[bytes]) -> tuple[object, ...]:
    translator = FORMATS[fmt](model="m", completion_id="chatcmpl-f", created=0,
                              include_usage=include_usage)
    relay = EventRelay(translator)
    out: list[bytes] = []
    try:
        for piece in pieces:
            out += relay.feed(piece)
        out += relay.close()
    except SSEProtocolError as exc:
        return ("sse_error", exc.message)
    return fuzzing.relay_outcome(relay, out)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    names = sorted(FORMATS)
    fmt = names[data[0] % len(names)]
    include_usage = bool(data[0] & 0x80)
    body = data[1:]
    whole = _run(fmt, include_usage, [body])
    assert _run(fmt, include_usage, fuzzing.random_pieces(body, random.Random(data[0]))) == whole
    assert _run(fmt, include_usage, fuzzing.bytewise(body)) == whole


def mutate(rng: random.Random) -> bytes:
    """A seed stream for a random format, its events reordered, cut and bit-flipped."""
    names = sorted(FORMATS)
    head = rng.randrange(256)
    fmt = names[head % len(names)]
    events = list(SEEDS[fmt])
    rng.shuffle(events) if rng.random() < 0.2 else None
    fuzzing.damage(events, rng)
    sep = rng.choice([b"\n\n", b"\r\n\r\n", b"\r\r"])
    stream = b"".join(b"data: " + e + sep for e in events)
    if rng.random() < 0.2:
        stream = stream[: rng.randrange(len(stream) + 1)]
    return bytes([head]) + stream


def smoke(n: int, seed: int = 0) -> int:
    return fuzzing.smoke("event_stream_fuzz", n, seed, mutate, test_one_input)


if __name__ == "__main__":
    fuzzing.cli(__doc__, smoke, lambda: test_one_input)
