"""Bedrock's InvokeModelWithResponseStream answer in, Anthropic SSE out: the pure twin.

Reference: Amazon Bedrock API Reference, "InvokeModelWithResponseStream" (``chunk`` events carry
a ``PayloadPart``, ``{"bytes": base64}``, here one Anthropic stream event each; exceptions are
``:message-type exception`` messages). ``modelmux._speedups.invoke_stream`` extends this class
with a one-pass ``feed`` for ordinary chunks; ``modelmux.providers.bedrock_claude`` picks a twin
through ``_accel``. This module is the readable reference both twins answer to.
"""

from __future__ import annotations

import binascii
import re

import msgspec

from modelmux.codec.eventstream import EventStreamDecoder, Message
from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.providers.claude_native import PassthroughRelay, with_model
from modelmux.translate.converse_to_chat import converse_error
from modelmux.translate.messages_errors import error_event, status_and_type

__all__ = ["WATCHED", "InvokeStreamRelay"]

WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error"})
"""Events the relay reads (usage, the client's model name, the end); the rest only pass."""
_encode = msgspec.json.Encoder().encode
_LEADING_TYPE = re.compile(rb'\{[ \t\n\r]*"type"[ \t\n\r]*:[ \t\n\r]*"([^"\\]*)"')


class _Part(msgspec.Struct):
    bytes: str


class _Typed(msgspec.Struct):
    type: str


_part = msgspec.json.Decoder(_Part)
_typed = msgspec.json.Decoder(_Typed)


def part_text(payload: bytes) -> bytes:
    """The base64 text of a ``PayloadPart`` (``{"bytes":"..."}``): sliced out when the
    payload is that one member, compact, else decoded (base64 holds no quote).

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not a ``PayloadPart``.
    """
    if payload.startswith(b'{"bytes":"') and payload.find(b'"', 10) == len(payload) - 2:
        return payload[10:-2]
    return _part.decode(payload).bytes.encode("ascii")


def type_of(data: bytes) -> str:
    """An Anthropic event's ``type``: read off its first member when it leads (as Anthropic
    writes it, compact or spaced), else decoded; the rest of the JSON is not checked.

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not a JSON object with a ``type``.
        UnicodeError: the leading type is not UTF-8.
    """
    start = 9 if data.startswith(b'{"type":"') else 10 if data.startswith(b'{"type": "') else 0
    if start:  # compact, or as json.dumps spaces it: no regex needed
        end = data.find(b'"', start)
        if end > 0 and data.find(b"\\", start, end) < 0:
            return data[start:end].decode()
    leading = _LEADING_TYPE.match(data)
    if leading is not None:
        return leading.group(1).decode()
    return _typed.decode(data).type


class InvokeStreamRelay(PassthroughRelay):
    """InvokeModelWithResponseStream bytes in, Anthropic SSE out: each ``chunk``'s payload is
    written as ``event: <type>`` with its JSON unchanged (``message_start`` carries the
    client's model name); an exception before any event is ``early_error``, after one an
    ``event: error`` that ends the stream."""

    _Frames: type = EventStreamDecoder
    """What frames the upstream bytes when the caller gives no decoder."""

    def __init__(self, provider: str, public_model: str,
                 frames: EventStreamDecoder | None = None) -> None:
        """``frames`` is the event stream decoder (tests pass a chosen twin)."""
        super().__init__(provider, public_model)
        self._held = None
        self._frames = self._Frames() if frames is None else frames
        self._heads: dict[str, bytes] = {}  # "event: NAME\ndata: " per event name met

    def feed(self, data: bytes) -> list[bytes]:
        """The SSE frames ``data`` completes.

        Raises:
            EventStreamError: the upstream event stream is malformed (a CRC, a length).
        """
        out: list[bytes] = []
        if self.finished:
            return out
        for message in self._frames.feed(data):
            self._message(message, out)
            if self.finished:
                break
        if out:
            self._started = True
        return out

    def close(self) -> list[bytes]:
        """Raises: EventStreamError: the body ended inside a message."""
        if not self.finished:
            self._frames.close()
        return super().close()

    def _message(self, message: Message, out: list[bytes]) -> None:
        """One event stream message: an exception, a ``chunk``, or something else (skipped)."""
        if message.kind == "exception" or message.kind == "error":
            self._exception(message, out)
        elif message.event == "chunk":
            self._chunk(message.payload, out)

    def _chunk(self, payload: bytes, out: list[bytes]) -> None:
        try:
            data = binascii.a2b_base64(part_text(payload), strict_mode=True)
            name = type_of(data)
            if data.find(b"\n") >= 0 or data.find(b"\r") >= 0:  # it would end the SSE event
                data = _encode(msgspec.json.decode(data))
            readable = name.find("\n") < 0 and name.find("\r") < 0  # it names the SSE event
        except (msgspec.DecodeError, msgspec.ValidationError, binascii.Error, UnicodeError):
            readable = False
        if not readable:
            self._fail(UpstreamError(f"provider {self.provider!r} sent an unreadable chunk",
                                     code="upstream_protocol_error"), out)
            return
        self._event(name, data, out)

    def _event(self, name: str, data: bytes, out: list[bytes]) -> None:
        """One Anthropic event (its JSON on one line): read when ``WATCHED``, then written."""
        if name == "message_start":
            data = with_model(data, self.public_model)
        if name in WATCHED:
            self._observe(name, data)
        if self.early_error is None:
            self._seen = True
            head = self._heads.get(name)
            if head is None:
                head = self._heads[name] = b"event: " + name.encode() + b"\ndata: "
            out.append(head + data + b"\n\n")

    def _exception(self, message: Message, out: list[bytes]) -> None:
        """A ``:message-type exception`` (``{"message"}``), as Bedrock's named error."""
        try:
            text = msgspec.json.decode(message.payload, type=dict[str, object]).get("message")
        except (msgspec.DecodeError, msgspec.ValidationError):
            text = None
        if not isinstance(text, str):
            text = message.text(":error-message")
        name = message.text(":exception-type") or message.text(":error-code")
        self._fail(converse_error(name, text), out)

    def _fail(self, error: ModelMuxError, out: list[bytes]) -> None:
        if not self._seen:
            self.early_error = error
            return
        self._finished = True
        out.append(error_event(status_and_type(error)[1], error.message))
