"""Tests for modelmux.codec; the SSE decoding helpers both SSE test modules use."""

from __future__ import annotations

import itertools
from types import ModuleType

from hypothesis import settings

from modelmux.codec.sse_common import Event

PROPERTY = settings(max_examples=200, deadline=None)


def feed_all(sse: ModuleType, pieces: list[bytes], **kwargs: int) -> list[object]:
    decoder = sse.SSEDecoder(**kwargs)
    events: list[object] = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.close()


def decode(sse: ModuleType, data: bytes, **kwargs: int) -> list[object]:
    """Events of ``data`` fed whole, after checking one byte at a time gives the same."""
    whole = feed_all(sse, [data], **kwargs)
    bytewise = feed_all(sse, [data[i : i + 1] for i in range(len(data))], **kwargs)
    assert bytewise == whole
    return whole


def ev(
    data: bytes, event: str = "message", id: str | None = None, retry: int | None = None
) -> Event:
    return Event(event, data, id, retry)


def split_at(blob: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(blob)]
    return [blob[a:b] for a, b in itertools.pairwise(bounds)]
