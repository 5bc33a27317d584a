"""What the fuzz targets here share: the command line, the smoke loop, cutting an input.

A target is run as ``python fuzz/<name>.py [libFuzzer flags] [corpus or crash file]`` under
atheris, or ``--smoke N`` anywhere: N generated inputs through the same one-input function,
no atheris needed. Each target keeps its invariant and its input generator.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from typing import Any, Literal

OneInput = Callable[[bytes], None]


def smoke(name: str, count: int, seed: int, make: Callable[[random.Random], bytes],
          one_input: OneInput, note: str = "") -> int:
    """Feed ``count`` inputs from ``make`` (seeded) to ``one_input``; returns how many ran."""
    rng = random.Random(seed)
    for _ in range(count):
        one_input(make(rng))
    print(f"{name}: {count} inputs ok{note}")
    return count


def cli(doc: str | None, run_smoke: Callable[[int], object], target: Callable[[], OneInput], *,
        instrument: Literal["all", "imports"] | None = None) -> None:
    """``--smoke [N]`` runs ``run_smoke(N)`` (1000 by default); otherwise atheris fuzzes what
    ``target()`` returns, with the other arguments passed to libFuzzer. ``instrument``:
    ``all`` instruments every module already imported, ``imports`` those ``target`` imports."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--smoke", type=int, nargs="?", const=1000, metavar="N",
                        help="run N inputs without atheris")
    args, rest = parser.parse_known_args()
    if args.smoke is not None:
        run_smoke(args.smoke)
        return
    import atheris  # type: ignore[import-untyped]  # only the fuzzing mode needs it

    if instrument == "imports":
        with atheris.instrument_imports():
            one_input = target()
    else:
        if instrument == "all":
            atheris.instrument_all()
        one_input = target()
    atheris.Setup([sys.argv[0], *rest], one_input)
    atheris.Fuzz()


def split_at(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at the sorted ``points`` (repeats give empty pieces)."""
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def random_pieces(data: bytes, rng: random.Random, most: int = 6) -> list[bytes]:
    """``data`` cut at up to ``most - 1`` random places."""
    return split_at(data, sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(most))))


def bytewise(data: bytes) -> list[bytes]:
    """``data`` one byte a piece: where stream parsers break."""
    return [data[i:i + 1] for i in range(len(data))]


def flip_bit(data: bytes, rng: random.Random) -> bytes:
    """``data`` (not empty) with one random bit flipped."""
    pos = rng.randrange(len(data))
    return data[:pos] + bytes([data[pos] ^ (1 << rng.randrange(8))]) + data[pos + 1:]


def damage(events: list[bytes], rng: random.Random, most: int = 3) -> None:
    """Up to ``most`` edits of ``events`` in place, each one event dropped, doubled,
    bit-flipped or cut short; stops when none is left."""
    for _ in range(rng.randint(0, most)):
        i = rng.randrange(len(events))
        body = events[i]
        action = rng.randrange(4)
        if action == 0:
            del events[i]
        elif action == 1:
            events.insert(i, body)
        elif action == 2 and body:
            events[i] = flip_bit(body, rng)
        else:
            events[i] = body[:rng.randrange(len(body) + 1)]
        if not events:
            break


def relay_outcome(relay: Any, out: list[bytes]) -> tuple[object, ...]:
    """What a stream relay that took its whole input ended with, once it is checked to have
    ended cleanly: an early error and no output, or chat chunks and ``[DONE]`` or one error.

    Raises:
        AssertionError: the relay did not end that way.
    """
    early = relay.early_error
    assert relay.finished
    if early is not None:
        assert out == [] and not relay.started, out
    else:
        last = out[-1]
        assert last == b"data: [DONE]\n\n" or b'"error"' in last, out
        for frame in out[:-1]:
            assert json.loads(frame.removeprefix(b"data: "))["object"] == "chat.completion.chunk"
    return (b"".join(out), relay.usage, None if early is None else (early.status, early.code))
