"""Fuzz target for the access line: the twins write the same line, and it is one whole line.

The input becomes one finished request: its first bytes choose the counts and durations, the rest,
split at ``\\x1f``, gives the nine text values (UTF-8, bytes that are not decoded as lone
surrogates). For both formats the native and pure ``AccessLine`` must give the same text, with
one newline at the end, no raw control character or line separator, and a JSON line must parse.
Runs under atheris (``python fuzz/access_line_fuzz.py [libFuzzer flags]``) or without it
(``--smoke N``).
"""

from __future__ import annotations

import importlib
import json
import random
import re
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import fuzzing  # noqa: E402
from modelmux.observability.record import RequestRecord  # noqa: E402
from modelmux.providers.base import CallStats  # noqa: E402

TWINS = ("modelmux.observability._access_line_py", "modelmux._speedups.access_line")
RAW = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NUMBERS = (0, 1, 200, 499, 10**6, 2**62 - 1, 2**62, 2**63, -1, -(10**9))
_TOKENS = (b"gpt-4o", b"/v1/chat/completions", b"POST", b" ", b'"', b"=", b"\\", b"\n", b"\x00",
           b"\x7f", b"\xc2\x85", b"\xe2\x80\xa8", b"\xff", b"\xe4\xb8\xad", b"standard",
           b"buffered", b"\x1f", b"a" * 300)


def load_lines() -> list[object]:
    """An ``AccessLine`` of the pure twin and, when it is built, of the native one."""
    modules: list[ModuleType] = [importlib.import_module(TWINS[0])]
    try:
        modules.append(importlib.import_module(TWINS[1]))
    except ImportError:
        print("access_line_fuzz: native twin not built, checking the pure twin only",
              file=sys.stderr)
    return [module.AccessLine("modelmux.access", 4242) for module in modules]


def request(data: bytes) -> tuple[RequestRecord, SimpleNamespace, int]:
    """The finished request that ``data`` describes, and the exchange clock's now."""
    head, body = data[:8].ljust(8, b"\0"), data[8:]
    texts = [t.decode("utf-8", "surrogateescape") for t in body.split(b"\x1f")]
    texts += [""] * (9 - len(texts))

    def text(i: int) -> str | None:
        return None if i >= 5 and head[7] >> (i - 5) & 1 else texts[i]

    def number(i: int) -> int:
        return NUMBERS[head[i] % len(NUMBERS)] + head[i] // len(NUMBERS)

    done = RequestRecord(texts[0], "/v1/chat/completions")
    done.model, done.provider, done.mode, done.key = text(5), text(6), text(7), text(8)
    if head[0] & 1:
        done.stats = CallStats()
        done.stats.attempts, done.stats.tokens = number(1), (number(2), number(3))
        done.overhead_ns = number(4)
    if head[0] & 2:
        done.span = SimpleNamespace(trace_id=texts[4])  # type: ignore[assignment]
    finished = SimpleNamespace(method=texts[1], path=texts[2], client=texts[3],
                               status=100 + head[5] * 2, started=bool(head[0] & 4),
                               ended=bool(head[0] & 8), started_ns=number(6), head_ns=number(5),
                               bytes_received=number(1), bytes_sent=number(2))
    return done, finished, number(6) + number(4)


def check(data: bytes, lines: list[object]) -> None:
    """The invariant; any exception is a finding too."""
    done, finished, now_ns = request(data)
    for fmt in ("text", "json"):
        written = [getattr(line, fmt)(done, finished, now_ns, 1_733_480_001_123_456_789)
                   for line in lines]
        if any(w != written[0] for w in written):
            raise AssertionError(f"twins disagree on {data!r}: {written!r}")
        line = written[0]
        if not line.endswith("\n") or len(line.splitlines()) != 1 or RAW.search(line[:-1]):
            raise AssertionError(f"not one clean line for {data!r}: {line!r}")
        if fmt == "json":
            json.loads(line)


def random_input(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return rng.randbytes(rng.randint(0, 200))
    return rng.randbytes(8) + b"".join(rng.choice(_TOKENS) for _ in range(rng.randint(0, 40)))


def smoke(count: int, seed: int = 0) -> int:
    """Run ``count`` random inputs through ``check`` without atheris."""
    lines = load_lines()
    note = f" ({', '.join(type(line).__module__ for line in lines)})"
    return fuzzing.smoke("access_line_fuzz", count, seed, random_input,
                         lambda data: check(data, lines), note=note)


def _target() -> fuzzing.OneInput:
    lines = load_lines()  # instrumented: coverage for the pure twin; the native one is opaque
    return lambda data: check(data, lines)


if __name__ == "__main__":
    fuzzing.cli(__doc__, smoke, _target, instrument="imports")
