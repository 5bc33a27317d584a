"""Fuzz target for the ``openai_compatible`` stream relay, native twin against pure twin.

Invariant: for any upstream body, fed whole or cut anywhere, both ``ChunkRelay`` twins return
the same client bytes, end in the same state (finished, started, usage, early error) and
raise the same exception (only ``SSEProtocolError`` may escape), and the cuts never change the
result. Runs under atheris (``python fuzz/relay_fuzz.py [libFuzzer flags]``) or without it
(``--smoke N``); without a native build (or with ``MODELMUX_PURE_PYTHON=1``) only the pure
twin runs.
"""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import fuzzing  # noqa: E402
from modelmux import _accel  # noqa: E402
from modelmux.codec.sse import SSEProtocolError  # noqa: E402

_TOKENS = (
    *(b"data: ", b"data:", b"event: x\n", b"id: 1\n", b": c\n", b"\n", b"\r\n", b"\r", b"\n\n"),
    *(b'{"id":"x","model":"up","choices":[]}', b'"model":"up"', b'"model": "up"', b"[DONE]"),
    *(b'"usage":', b'"usage":{"prompt_tokens":1,"completion_tokens":2}', b"null", b"{", b"}"),
    *(b'{"error":{"message":"m","type":"server_error"}}', b'"error"', b" " * 16, b"\t"),
    *(b"\xef\xbb\xbf", b"\x00", b"\xff", b'"\\u006dodel"', b"x"),
)


def _twins() -> list[type]:
    """The pure class, and the native one when built (and not turned off)."""
    classes = [importlib.import_module("modelmux.providers.chunk_relay").ChunkRelay]
    if not _accel.pure_forced():
        try:
            classes.append(importlib.import_module("modelmux._speedups.chunk_relay").ChunkRelay)
        except ImportError:
            if _accel.native_required():
                raise
    return classes


_CLASSES = _twins()


def _run(cls: type, pieces: list[bytes]) -> tuple[object, ...]:
    relay = cls("local", "public-name")
    out: list[bytes] = []
    try:
        for piece in pieces:
            out += relay.feed(piece)
            if relay.finished or relay.early_error is not None:
                break
        else:
            out += relay.close()
    except SSEProtocolError as exc:
        return ("SSEProtocolError", str(exc), b"".join(out))
    early = relay.early_error
    return (b"".join(out), relay.finished, relay.started, relay.usage,
            None if early is None else (type(early).__name__, early.message))


def check(body: bytes, cuts: list[int]) -> None:
    """The invariant; any other exception escaping is a finding too."""
    split = fuzzing.split_at(body, sorted({c % (len(body) + 1) for c in cuts}))
    whole = _run(_CLASSES[0], [body])
    for cls in _CLASSES:
        for pieces in ([body], split):
            got = _run(cls, pieces)
            if got != whole:
                raise AssertionError(f"{cls.__module__} on {pieces!r}: {got!r} != {whole!r}")


def random_input(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.randint(0, 200))
    if roll < 0.6:  # mostly framed events, so the relay's per-event paths run
        return b"".join(b"data: " + b"".join(rng.choice(_TOKENS) for _ in range(rng.randint(0, 5)))
                        + rng.choice((b"\n\n", b"\n\n", b"\r\n\r\n", b"\n"))
                        for _ in range(rng.randint(0, 12)))
    return b"".join(rng.choice(_TOKENS) for _ in range(rng.randint(0, 30)))


def run_one(data: bytes) -> None:
    """The first byte seeds the cut points; the rest is the upstream body."""
    rng = random.Random(data[0] if data else 0)
    check(data[1:], [rng.randint(0, 1 << 16) for _ in range(rng.randint(0, 6))])


def smoke(count: int, seed: int = 0) -> int:
    return fuzzing.smoke("relay_fuzz", count, seed,
                         lambda rng: bytes([rng.randint(0, 255)]) + random_input(rng), run_one,
                         f" ({len(_CLASSES)} twins)")


if __name__ == "__main__":  # coverage for the pure twin and the SSE decoder; native is opaque
    fuzzing.cli(__doc__, smoke, lambda: run_one, instrument="all")
