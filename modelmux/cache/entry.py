"""``Entry``: one stored answer, exactly as the client got it, and what it cost upstream.

``form`` is "json" (one body) or "sse" (the event stream as delivered, replayed byte for
byte). ``usage`` is the upstream's (input, output) tokens, for the spend log's "saved" cost.
"""

from __future__ import annotations

import msgspec

JSON, SSE = "json", "sse"
ENTRY_OVERHEAD = 256
"""Bytes counted per entry beyond its body and key (the objects that hold it)."""


class Entry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    form: str
    body: bytes
    provider: str = ""
    model: str = ""
    usage: tuple[int, int] | None = None
    stored_at: float = 0.0

    def size(self, key: str) -> int:
        """What the entry counts against ``max_bytes``."""
        return len(self.body) + len(key) + ENTRY_OVERHEAD


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


def encode_entry(entry: Entry) -> bytes:
    """The entry as bytes (Redis values)."""
    return _encoder.encode(entry)


def decode_entry(data: bytes) -> Entry | None:
    """The entry ``data`` holds, or None when it is not one (another version wrote it)."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
