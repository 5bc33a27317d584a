"""Fuzz target for the SSE decoder: it decodes, or raises SSEProtocolError, nothing else.

Each input is fed whole, in random cuts and one byte at a time, through every available twin;
the twins must agree call by call and cuts must not change the result. Runs under atheris
(``python fuzz/sse_fuzz.py [libFuzzer flags]``) or without it (``--smoke N``).
"""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import fuzzing  # noqa: E402
from modelmux.codec.sse_common import SSEProtocolError  # noqa: E402

TWINS = ("modelmux.codec._sse_py", "modelmux._speedups.sse")
MAX_LINES = (0, 7, 64, 1 << 20)
_TOKENS = (
    *(b"data", b"event", b"id", b"retry", b":", b": ", b" ", b"\r", b"\n", b"\r\n", b"\n\n"),
    *(b"123", b"\x00", b"\xef\xbb\xbf", b"\xff", b"message", b"[DONE]", b'{"a":1}'),
    *(b"9" * 18, b"9" * 19, b"7" * 5000),
)


def load_twins() -> list[ModuleType]:
    """The pure twin and, when it is built, the native one."""
    modules = [importlib.import_module(TWINS[0])]
    try:
        modules.append(importlib.import_module(TWINS[1]))
    except ImportError:
        print("sse_fuzz: native twin not built, fuzzing the pure twin only", file=sys.stderr)
    return modules


def trace(module: ModuleType, pieces: list[bytes], max_line: int) -> list[object]:
    """What each call returned, "error" at the first SSEProtocolError, then the decoder's state."""
    decoder = module.SSEDecoder(max_line=max_line)
    steps: list[object] = []
    try:
        for piece in pieces:
            steps.append(decoder.feed(piece))
        steps.append(decoder.close())
    except SSEProtocolError:
        steps.append("error")
    steps.append((decoder.last_event_id, decoder.retry))
    return steps


def cut(data: bytes, rng: random.Random) -> list[bytes]:
    bounds = sorted({0, len(data), *(rng.randint(0, len(data)) for _ in range(rng.randint(0, 8)))})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def check(data: bytes, twins: list[ModuleType], seed: int = 0) -> None:
    """The invariant; anything but SSEProtocolError escaping is a finding too."""
    rng = random.Random(seed)
    max_line = MAX_LINES[seed % len(MAX_LINES)]
    results: list[tuple[bool, object]] = []
    for pieces in ([data], cut(data, rng), fuzzing.bytewise(data)):
        traces = [trace(module, pieces, max_line) for module in twins]
        if any(t != traces[0] for t in traces):
            raise AssertionError(f"twins disagree on {pieces!r}: {traces!r}")
        steps = traces[0][:-1]
        failed = steps[-1] == "error"
        events = None if failed else [e for step in steps for e in step]
        results.append((failed, events))
    if any(r != results[0] for r in results):
        raise AssertionError(f"cuts changed the result for {data!r}: {results!r}")


def random_input(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return rng.randbytes(rng.randint(0, 200))
    return b"".join(rng.choice(_TOKENS) for _ in range(rng.randint(0, 60)))


def target() -> fuzzing.OneInput:
    """The check over the twins, the first input byte its seed."""
    twins = load_twins()
    return lambda data: check(data[1:], twins, seed=data[0] if data else 0)


def smoke(count: int, seed: int = 0) -> int:
    names = ", ".join(m.__name__ for m in load_twins())
    return fuzzing.smoke("sse_fuzz", count, seed,
                         lambda rng: bytes([rng.randrange(256)]) + random_input(rng), target(),
                         f" ({names})")


if __name__ == "__main__":  # coverage for the pure twin; the native one is opaque
    fuzzing.cli(__doc__, smoke, target, instrument="imports")
