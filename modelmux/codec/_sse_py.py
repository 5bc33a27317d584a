"""Pure-Python twin of ``modelmux._speedups.sse``: the SSE decoder and encoders, sans-I/O.

Implements WHATWG HTML "9.2 Server-sent events", "Interpreting an event stream", in two
stages: ``_LineSplitter`` (BOM, CR/LF/CRLF, a CR ending one feed and an LF starting the next)
and ``_FieldParser`` (comments, data/event/id/retry, dispatch). It owns no I/O and no JSON.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator

from modelmux.codec.sse_common import Event, SSEProtocolError

__all__ = [
    "DONE",
    "Event",
    "SSEDecoder",
    "SSEProtocolError",
    "encode_comment",
    "encode_data",
    "encode_event",
]

DONE = b"data: [DONE]\n\n"
_BOM = b"\xef\xbb\xbf"
_MAX_RETRY_DIGITS = 18  # longer retry values are ignored (int() refuses 4301+ digits)
_LINE_END = re.compile(rb"\r\n|\r|\n")


class _LineSplitter:
    """Stage 1: bytes in, complete lines (without their terminator) out."""

    def __init__(self, max_line: int) -> None:
        self._max_line = max_line
        self._tail = bytearray()  # the unterminated last line
        self._skip_lf = False  # the previous feed ended with a CR, so an LF now is its pair
        self._at_start = True  # a leading BOM may still arrive

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield the lines ``data`` completes, in order; consume it at once.

        Raises:
            SSEProtocolError: a line exceeds ``max_line`` bytes (after the lines before it).
        """
        if not data:
            return
        if self._at_start:
            data = bytes(self._tail) + data
            self._tail.clear()
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._tail += data  # a BOM might be arriving byte by byte
                return
            self._at_start = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if self._skip_lf and data.startswith(b"\n"):
            data = data[1:]
        self._skip_lf = False
        if b"\n" not in data and b"\r" not in data:
            self._tail += data
            self._check(len(self._tail))
            return
        if self._tail:
            data = bytes(self._tail) + data
            self._tail.clear()
        pieces = _LINE_END.split(data)
        self._tail += pieces.pop()  # after the last terminator; empty when data ends with one
        # A CR ends its line at once (no waiting for the next feed); remember to eat its LF.
        self._skip_lf = data.endswith(b"\r")
        for line in pieces:
            self._check(len(line))
            yield line
        self._check(len(self._tail))

    def _check(self, length: int) -> None:
        if length > self._max_line:
            raise SSEProtocolError(f"SSE line longer than {self._max_line} bytes")


class _FieldParser:
    """Stage 2: lines in, events out; holds the spec's data/event type/last event ID buffers."""

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._event = b""
        self._id_buffer = ""
        self.last_event_id = ""
        self._block_retry: int | None = None
        self.retry: int | None = None

    def line(self, line: bytes, out: list[Event]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line.startswith(b":"):
            return  # comment
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if b"\x00" not in value:
                self._id_buffer = value.decode("utf-8", "replace")
        elif name == b"retry":
            # bytes.isdigit is ASCII-only and False when empty
            if value.isdigit() and len(value) <= _MAX_RETRY_DIGITS:
                self._block_retry = self.retry = int(value)

    def _dispatch(self, out: list[Event]) -> None:
        self.last_event_id = self._id_buffer
        if self._data:
            out.append(
                Event(
                    self._event.decode("utf-8", "replace") if self._event else "message",
                    b"\n".join(self._data),
                    self.last_event_id or None,
                    self._block_retry,
                )
            )
        self._data = []
        self._event = b""
        self._block_retry = None


class SSEDecoder:
    """Incremental SSE decoder: ``feed(bytes) -> list[Event]``, then ``close()`` at end of input.

    Bytes may be split anywhere. After ``close()``, ``feed()`` raises ``RuntimeError`` (a bug in
    the caller, as in h11); after an ``SSEProtocolError`` every later call raises it again.
    """

    __slots__ = ("_lines", "_fields", "_closed", "_failed")

    def __init__(self, max_line: int = 1 << 20) -> None:
        """Raises: ValueError when ``max_line`` is negative."""
        if max_line < 0:
            raise ValueError("max_line must be >= 0")
        self._lines = _LineSplitter(max_line)
        self._fields = _FieldParser()
        self._closed = False
        self._failed = False

    @property
    def last_event_id(self) -> str:
        """The last event ID string (for a reconnect's ``Last-Event-ID``); "" when none."""
        return self._fields.last_event_id

    @property
    def retry(self) -> int | None:
        """The latest reconnection time in ms the stream asked for, if any."""
        return self._fields.retry

    def feed(self, data: bytes) -> list[Event]:
        """Decode the next piece of the stream; return the events it completed.

        Raises:
            SSEProtocolError: a line is longer than ``max_line``, or the decoder already failed.
            RuntimeError: called after ``close()``.
        """
        self._usable()
        if type(data) is not bytes:
            data = bytes(memoryview(data))
        out: list[Event] = []
        try:
            for line in self._lines.feed(data):
                self._fields.line(line, out)
        except SSEProtocolError:
            self._failed = True
            raise
        return out

    def close(self) -> list[Event]:
        """End of input: discard an unterminated line or event (spec) and return what remains.

        That is always ``[]`` here, since a CR ends its line without waiting for the next feed;
        the list keeps the ``feed`` shape. Calling it again returns ``[]``.

        Raises:
            SSEProtocolError: the decoder already failed.
        """
        if self._failed:
            raise SSEProtocolError("SSE decoder already failed")
        self._closed = True
        return []

    def _usable(self) -> None:
        if self._failed:
            raise SSEProtocolError("SSE decoder already failed")
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() called after close()")


def _single_line(value: str, what: str) -> bytes:
    if "\r" in value or "\n" in value:
        raise ValueError(f"SSE {what} must not contain CR or LF")
    return value.encode("utf-8")


def encode_event(
    data: bytes | str,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event; any line end inside ``data`` becomes another ``data:`` line.

    SSE cannot carry a CR inside data, so CR, LF and CRLF in ``data`` all decode back as LF.

    Raises:
        ValueError: ``event`` or ``id`` holds CR/LF, ``id`` holds NUL, or ``retry`` is negative.
    """
    parts: list[bytes] = []
    if event is not None:
        parts += (b"event: ", _single_line(event, "event"), b"\n")
    if id is not None:
        if "\x00" in id:
            raise ValueError("SSE id must not contain NUL")
        parts += (b"id: ", _single_line(id, "id"), b"\n")
    if retry is not None:
        retry = operator.index(retry)
        if retry < 0:
            raise ValueError("SSE retry must be >= 0")
        parts += (b"retry: ", str(retry).encode("ascii"), b"\n")
    if isinstance(data, str):
        data = data.encode("utf-8")
    for line in _LINE_END.split(data):
        parts += (b"data: ", line, b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def encode_data(payload: bytes) -> bytes:
    """Encode one ``data:`` event (one JSON chunk): the per-chunk hot path."""
    if b"\n" in payload or b"\r" in payload:
        return encode_event(payload)
    return b"data: " + payload + b"\n\n"


def encode_comment(text: str = "") -> bytes:
    """Encode a comment (a keep-alive); clients ignore it. A blank line follows it.

    The blank line keeps naive clients that split on blank lines from gluing it to an event.
    """
    if not text:
        return b":\n\n"
    lines = _LINE_END.split(text.encode("utf-8"))
    return b"".join(b": " + line + b"\n" for line in lines) + b"\n"
