"""Fuzz target for the AWS event stream decoder and the Bedrock ConverseStream translator.

Invariant: for any upstream body, fed whole or cut anywhere, ``ConverseRelay`` returns the same
client bytes and ends in the same state with the pure and the native twins (decoder and
translator); only ``EventStreamError`` escapes; otherwise after ``close()`` the relay is
finished and its output ends with ``[DONE]`` or one error event, or it holds an early error and
output nothing. Runs under atheris (``python fuzz/converse_stream_fuzz.py``) or without it
(``--smoke N``); without a native build (or with ``MODELMUX_PURE_PYTHON=1``) only the pure
twins run. The first input byte picks ``include_usage`` and JSON mode and seeds the cuts.
"""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import fuzzing
from modelmux import _accel
from modelmux.codec.eventstream import EventStreamError, encode_message
from modelmux.providers.bedrock import ConverseRelay

Twins = tuple[type, type]  # the translator class and the decoder class


def _twins() -> list[Twins]:
    """The pure pair, and the native one when built (and not turned off)."""
    pairs = [(importlib.import_module("modelmux.translate._converse_stream_py")
              .ConverseStreamTranslator,
              importlib.import_module("modelmux.codec._eventstream_py").EventStreamDecoder)]
    if not _accel.pure_forced():
        try:
            pairs.append((importlib.import_module("modelmux._speedups.converse_stream")
                          .ConverseStreamTranslator,
                          importlib.import_module("modelmux._speedups.eventstream")
                          .EventStreamDecoder))
        except ImportError:
            if _accel.native_required():
                raise
    return pairs


TWINS = _twins()


def _event(kind: str, payload: bytes) -> tuple[dict[str, str], bytes]:
    return {":event-type": kind, ":message-type": "event",
            ":content-type": "application/json"}, payload


SEEDS: list[tuple[dict[str, str], bytes]] = [
    _event("messageStart", b'{"role":"assistant","p":"ab"}'),
    _event("contentBlockDelta", b'{"delta":{"text":"H\\u00e9llo"},"contentBlockIndex":0}'),
    _event("contentBlockStop", b'{"contentBlockIndex":0}'),
    _event("contentBlockStart", b'{"start":{"toolUse":{"toolUseId":"t1","name":"f"}},'
                                b'"contentBlockIndex":1}'),
    _event("contentBlockDelta", b'{"delta":{"toolUse":{"input":"{\\"a\\": 1"}},'
                                b'"contentBlockIndex":1}'),
    _event("contentBlockDelta", b'{"delta":{"toolUse":{"input":"}"}},"contentBlockIndex":1}'),
    _event("messageStop", b'{"stopReason":"tool_use"}'),
    _event("metadata", b'{"usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5},'
                       b'"metrics":{"latencyMs":1}}'),
    ({":message-type": "exception", ":exception-type": "throttlingException"},
     b'{"message":"slow"}'),
]


def _run(twins: Twins, include_usage: bool, pieces: list[bytes],
         json_tool: str | None = None) -> tuple[object, ...]:
    translator, decoder = twins
    relay = ConverseRelay(translator(model="m", completion_id="chatcmpl-f", created=0,
                                     include_usage=include_usage, json_tool=json_tool), decoder())
    out: list[bytes] = []
    try:
        for piece in pieces:
            out += relay.feed(piece)
        out += relay.close()
    except EventStreamError as exc:
        return ("eventstream_error", b"".join(out), exc.message)
    return fuzzing.relay_outcome(relay, out)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    include_usage = bool(data[0] & 0x80)
    json_tool = "f" if data[0] & 0x40 else None  # JSON mode: tool "f" carries the answer
    body = data[1:]
    whole = _run(TWINS[0], include_usage, [body], json_tool)
    pieces = fuzzing.random_pieces(body, random.Random(data[0]))
    for twins in TWINS:
        for split in ([body], pieces, fuzzing.bytewise(body)):
            got = _run(twins, include_usage, split, json_tool)
            assert got == whole, (twins[0].__module__, split, got, whole)


def mutate(rng: random.Random) -> bytes:
    """The seed messages reordered, dropped, doubled, their payloads cut or bit-flipped, and
    sometimes the framed bytes themselves flipped or cut (CRC and length errors)."""
    messages = list(SEEDS)
    if rng.random() < 0.2:
        rng.shuffle(messages)
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(len(messages))
        headers, payload = messages[i]
        action = rng.randrange(4)
        if action == 0:
            del messages[i]
        elif action == 1:
            messages.insert(i, (headers, payload))
        elif action == 2 and payload:
            messages[i] = (headers, fuzzing.flip_bit(payload, rng))
        else:
            messages[i] = (headers, payload[:rng.randrange(len(payload) + 1)])
        if not messages:
            break
    stream = bytearray(b"".join(encode_message(h, p) for h, p in messages))
    if stream and rng.random() < 0.15:
        stream[rng.randrange(len(stream))] ^= 1 << rng.randrange(8)
    if rng.random() < 0.15:
        del stream[rng.randrange(len(stream) + 1):]
    return bytes([rng.randrange(256)]) + bytes(stream)


def smoke(n: int, seed: int = 0) -> int:
    return fuzzing.smoke("converse_stream_fuzz", n, seed, mutate, test_one_input,
                         f" ({len(TWINS)} twins)")


if __name__ == "__main__":  # the decoder and translator modules are already imported above
    fuzzing.cli(__doc__, smoke, lambda: test_one_input, instrument="all")
