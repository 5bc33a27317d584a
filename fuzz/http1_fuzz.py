"""Fuzz target for the fast HTTP/1.1 server parser, differential against h11.

Invariant: the py and native twins return the same events (or the same HTTP1ProtocolError
status) for an input fed whole or cut anywhere; whatever they accept h11 accepts with the same
events, and they reject more than h11 only on obs-fold, Content-Length with Transfer-Encoding,
or a version other than 1.0/1.1. Runs under atheris or without it (``--smoke N``).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import fuzzing  # noqa: E402

_TOKENS = (
    *(b"GET / HTTP/1.1", b"POST /v1 HTTP/1.0", b"HTTP/2.0", b"\r\n", b"\n", b"\r", b" ", b"\t"),
    *(b"Host: a", b"Content-Length: ", b"Transfer-Encoding: chunked", b"Connection: close"),
    *(b"Expect: 100-continue", b":", b",", b"0", b"5", b"ffffffffffffffffffff", b"\x00", b"\xff"),
    *(b"0\r\n\r\n", b"5;x=y\r\nhello\r\n", b"X-A: b", b"GET"),
)


def random_input(rng: random.Random) -> bytes:
    if rng.random() < 0.2:
        return rng.randbytes(rng.randint(0, 120))
    return b"".join(rng.choice(_TOKENS) for _ in range(rng.randint(0, 40)))


def run_one(check: Callable[[bytes, list[int]], None], data: bytes) -> None:
    """The first byte seeds the cut points; the rest is the request stream."""
    rng = random.Random(data[0] if data else 0)
    check(data[1:], [rng.randint(0, 1 << 16) for _ in range(rng.randint(0, 6))])


def target() -> fuzzing.OneInput:
    from tests.server.http1_diff import check

    return lambda data: run_one(check, data)


def smoke(count: int, seed: int = 0) -> int:
    return fuzzing.smoke("http1_fuzz", count, seed,
                         lambda rng: bytes([rng.randint(0, 255)]) + random_input(rng), target())


if __name__ == "__main__":  # coverage for the pure twin and h11; native is opaque
    fuzzing.cli(__doc__, smoke, target, instrument="imports")
