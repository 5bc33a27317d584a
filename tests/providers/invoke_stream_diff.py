"""The InvokeModelWithResponseStream relay's differential check, shared by the hypothesis test
(``test_invoke_stream.py``) and the fuzz target (``fuzz/invoke_stream_fuzz.py``).

``run`` feeds a body cut into pieces to one relay and records what each call gave or raised
(only ``EventStreamError`` may escape) and the end state; ``check`` asserts that the pure twin
(pure decoder) and the native twin agree call for call, that the cuts change nothing, and that a finished stream ends in exactly one
``message_stop`` or ``error`` event with every frame one ``event:`` line and one ``data:`` line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from modelmux import _accel
from modelmux.codec import _eventstream_py
from modelmux.codec.eventstream import EventStreamError
from modelmux.providers import invoke_stream

MODEL = "claude-sonnet-4-5"
Make = Callable[[], Any]


def _pure() -> Any:
    return invoke_stream.InvokeStreamRelay("br", MODEL,
                                           frames=_eventstream_py.EventStreamDecoder())


def twins() -> dict[str, Make]:
    """``py`` and, when built (and not turned off), ``native``."""
    found: dict[str, Make] = {"py": _pure}
    if not _accel.pure_forced():
        try:
            native = importlib.import_module("modelmux._speedups.invoke_stream")
        except ImportError:
            if _accel.native_required():
                raise
        else:
            found["native"] = lambda: native.InvokeStreamRelay("br", MODEL)
    return found


TWINS = twins()


def run(make: Make, pieces: list[bytes]) -> tuple[list[object], tuple[object, ...]]:
    """Per call (each feed, then close): its frames, or the EventStreamError it raised (the
    calls stop there); and the end state."""
    relay = make()
    calls: list[object] = []
    try:
        for piece in pieces:
            calls.append(relay.feed(piece))
        calls.append(relay.close())
    except EventStreamError as exc:
        calls.append(("eventstream_error", exc.message))
    early = relay.early_error
    state = (relay.usage, relay.cache, relay.finished, relay.started,
             None if early is None else (early.status, early.code, early.message))
    return calls, state


def _joined(calls: list[object]) -> tuple[bytes, object]:
    out = b"".join(b"".join(c) for c in calls if isinstance(c, list))
    return out, calls[-1] if isinstance(calls[-1], tuple) else None


def _frames_are_sse(out: bytes) -> None:
    frames = out.split(b"\n\n")
    assert frames[-1] == b"", out
    for frame in frames[:-1]:
        head, sep, data = frame.partition(b"\ndata: ")
        assert sep and head.startswith(b"event: ") and b"\n" not in head[7:], frame
        assert b"\n" not in data and b"\r" not in data, frame
    names = [f.split(b"\n", 1)[0][7:] for f in frames[:-1]]
    ends = [n for n in names if n in (b"message_stop", b"error")]
    assert len(ends) <= 1 and (not ends or names[-1] == ends[0]), names


def check(body: bytes, cuts: list[int]) -> tuple[bytes, object]:
    """Assert the twins agree on ``body`` whole, cut at ``cuts`` and one byte at a time.
    Returns the client bytes and the error, if any."""
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    splits = [[body], pieces, [body[i:i + 1] for i in range(len(body))]]
    reference = [run(_pure, split) for split in splits]
    for name, make in TWINS.items():
        for split, (calls, state) in zip(splits, reference, strict=True):
            assert run(make, split) == (calls, state), (name, split)
    whole_calls, whole_state = reference[0]
    joined = _joined(whole_calls)
    for calls, state in reference[1:]:
        assert _joined(calls) == joined and state == whole_state
    out, error = joined
    _frames_are_sse(out)
    if error is None:
        *_, finished, started, early = whole_state
        assert finished
        if early is not None:
            assert out == b"" and not started
        else:
            assert out.endswith(b"\n\n") and started
            last = out.rsplit(b"\n\n", 2)[-2].split(b"\n", 1)[0]
            assert last in (b"event: message_stop", b"event: error"), out
    return joined
