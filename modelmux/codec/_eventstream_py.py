"""The AWS event stream framing (``application/vnd.amazon.eventstream``), sans I/O: the pure twin.

Reference: AWS "Event stream encoding" (Transcribe / Lex developer guides; Bedrock's
ConverseStream answers in it). A message is a 12-byte prelude (total length, headers length,
CRC32 of those 8 bytes), the headers, the payload and a CRC32 of everything before it, all
big-endian. ``EventStreamDecoder`` takes bytes cut anywhere and returns whole messages;
``encode_message`` writes one (for fakes, tests and benchmarks). What the messages mean is the
translator's business. Import from ``modelmux.codec.eventstream``, which picks the native
decoder when built; this module is the readable reference.
"""

from __future__ import annotations

import struct
from zlib import crc32

from modelmux.errors import UpstreamError

HeaderValue = bool | int | bytes | str

PRELUDE = 12
OVERHEAD = 16  # the prelude and the message CRC
MAX_MESSAGE = 16 * 1024 * 1024
"""Largest message accepted (the AWS SDKs refuse above 16 MiB as well)."""

_PRELUDE = struct.Struct(">III")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_CACHED_HEADERS = 64
_FIXED = {2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i"),
          5: struct.Struct(">q"), 8: struct.Struct(">q")}
"""Header value types of fixed width: byte, short, integer, long, timestamp (ms)."""


class EventStreamError(UpstreamError):
    """The upstream sent bytes that are not a well-formed event stream (CRC, lengths, types)."""

    status = 502
    code = "upstream_bad_event_stream"


class Message:
    """One decoded message: its headers by name, its payload bytes, and the two headers every
    consumer reads first, ``:message-type`` (``kind``, "event" when absent) and
    ``:event-type`` (``event``)."""

    __slots__ = ("event", "headers", "kind", "payload")

    def __init__(self, headers: dict[str, HeaderValue], payload: bytes, kind: str | None = None,
                 event: str | None = None) -> None:
        """``kind`` and ``event`` are read from ``headers`` unless given (the decoder knows
        them per header section)."""
        self.headers = headers
        self.payload = payload
        self.kind = kind if kind is not None else (self.text(":message-type") or "event")
        self.event = event if event is not None else self.text(":event-type")

    def text(self, name: str) -> str:
        """A string header's value, or "" when absent or not a string."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else ""

    def __repr__(self) -> str:
        return f"Message({self.headers!r}, {self.payload!r})"


class EventStreamDecoder:
    """Bytes in, whole ``Message`` objects out; both CRCs are checked.

    A ``feed`` that completes good messages before a bad one returns them and raises on the
    next call (or ``close``), so the output does not depend on where the input was cut. After
    an error the decoder is broken: every further call raises it again. Header sections seen
    before are not parsed again (a stream repeats a handful): messages may share one headers
    dict, which is read-only by contract.
    """

    __slots__ = ("_cache", "_error", "_need", "_pending", "max_message")

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._pending = bytearray()
        self._need = 0  # length of the message whose start is pending, once its prelude is in
        self._error: EventStreamError | None = None
        self._cache: dict[bytes, Message] = {}  # header section -> a message without payload

    @property
    def pending(self) -> int:
        """Bytes held of a message not complete yet."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[Message]:
        """The messages ``data`` completes, in order.

        Raises:
            EventStreamError: a CRC mismatch, impossible lengths or an unknown header type.
        """
        if self._error is not None:
            raise self._error
        pending = self._pending
        if pending:
            pending += data
            if len(pending) < self._need:
                return []
            buf = bytes(pending)
            pending.clear()
        else:
            buf = data if type(data) is bytes else bytes(data)
        out: list[Message] = []
        at, end, total = 0, len(buf), 0
        view = memoryview(buf)
        try:
            while end - at >= PRELUDE:
                total, header_len, prelude_crc = _PRELUDE.unpack_from(buf, at)
                if crc32(view[at:at + 8]) != prelude_crc:
                    raise EventStreamError("event stream prelude CRC mismatch")
                if total < OVERHEAD or header_len > total - OVERHEAD:
                    raise EventStreamError(f"event stream lengths are impossible: total {total},"
                                           f" headers {header_len}")
                if total > self.max_message:
                    raise EventStreamError(f"event stream message of {total} bytes is over the "
                                           f"{self.max_message}-byte limit")
                if end - at < total:
                    break
                stop = at + total - 4
                if crc32(view[at:stop]) != _U32.unpack_from(buf, stop)[0]:
                    raise EventStreamError("event stream message CRC mismatch")
                body = at + PRELUDE + header_len
                raw = buf[at + PRELUDE:body]
                known = self._cache.get(raw)
                if known is None:
                    known = Message(parse_headers(raw), b"")
                    if len(self._cache) < _CACHED_HEADERS:
                        self._cache[raw] = known
                out.append(Message(known.headers, buf[body:stop], known.kind, known.event))
                at += total
                total = 0
        except EventStreamError as exc:
            self._error = exc
            if not out:
                raise
            return out  # the messages before the bad one; the error comes next call
        if at < end:
            pending += view[at:]
            self._need = total
        return out

    def close(self) -> None:
        """End of input.

        Raises:
            EventStreamError: the input ended inside a message, or an error is pending.
        """
        if self._error is not None:
            raise self._error
        if self._pending:
            self._error = EventStreamError(
                f"event stream ended inside a message ({len(self._pending)} bytes left over)")
            raise self._error


def parse_headers(data: bytes) -> dict[str, HeaderValue]:
    """The headers section of one message.

    Raises:
        EventStreamError: a header runs past the section or has an unknown value type.
    """
    headers: dict[str, HeaderValue] = {}
    at, end = 0, len(data)
    try:
        while at < end:
            name_len = data[at]
            name = data[at + 1:at + 1 + name_len].decode("utf-8")
            at += 1 + name_len
            kind = data[at]
            at += 1
            value: HeaderValue
            if kind <= 1:
                value = kind == 0
            elif kind in _FIXED:
                fixed = _FIXED[kind]
                (value,) = fixed.unpack_from(data, at)
                at += fixed.size
            elif kind in (6, 7):
                (size,) = _U16.unpack_from(data, at)
                raw = data[at + 2:at + 2 + size]
                if len(raw) != size:
                    raise EventStreamError("event stream header value runs past its section")
                value = raw.decode("utf-8") if kind == 7 else raw
                at += 2 + size
            elif kind == 9:
                value = data[at:at + 16]
                at += 16
            else:
                raise EventStreamError(f"event stream header {name!r} has unknown type {kind}")
            if at > end or len(name.encode()) != name_len:
                raise EventStreamError("event stream header runs past its section")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError(f"event stream headers are malformed: {exc}") from None
    return headers


def encode_headers(headers: dict[str, str]) -> bytes:
    """String headers (type 7) in the wire layout."""
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += bytes((len(raw_name),)) + raw_name + b"\x07" + _U16.pack(len(raw_value))
        out += raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One whole message with string headers and both CRCs."""
    raw_headers = encode_headers(headers)
    total = OVERHEAD + len(raw_headers) + len(payload)
    prelude = struct.pack(">II", total, len(raw_headers))
    head = prelude + struct.pack(">I", crc32(prelude)) + raw_headers + payload
    return head + struct.pack(">I", crc32(head))
