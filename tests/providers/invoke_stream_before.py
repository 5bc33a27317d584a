"""``InvokeStreamRelay`` as it was at 7c1d186, before the twins: the "today's path" the
differential tests and the benchmark compare both twins with. Not used by the package.

Known differences, both fixed in the twins: an event whose JSON is invalid and holds a raw line
break raised ``msgspec.DecodeError`` out of ``feed``, and a ``type`` holding an escaped line
break was written into the ``event:`` line.
"""

from __future__ import annotations

import binascii

import msgspec

from modelmux.codec.eventstream import EventStreamDecoder, Message
from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.providers.claude_native import PassthroughRelay, with_model
from modelmux.translate.converse_to_chat import converse_error
from modelmux.translate.messages_errors import error_event, status_and_type

_WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error"})
_encode = msgspec.json.Encoder().encode


class _Part(msgspec.Struct):
    bytes: str


class _Typed(msgspec.Struct):
    type: str


_part = msgspec.json.Decoder(_Part)
_typed = msgspec.json.Decoder(_Typed)


def _part_text(payload: bytes) -> bytes:
    """The base64 text of a ``PayloadPart`` (``{"bytes":"..."}``): sliced out when the
    payload is that one member, compact, else decoded (base64 holds no quote).

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not a ``PayloadPart``.
    """
    if payload.startswith(b'{"bytes":"') and payload.find(b'"', 10) == len(payload) - 2:
        return payload[10:-2]
    return _part.decode(payload).bytes.encode("ascii")


def _type_of(data: bytes) -> str:
    """An Anthropic event's ``type``: read off its first member when it leads (as Anthropic
    writes it), else decoded.

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not a JSON object with a ``type``.
    """
    if data.startswith(b'{"type":"'):
        end = data.find(b'"', 9)
        if end > 0 and b"\\" not in data[9:end]:
            return data[9:end].decode()
    return _typed.decode(data).type


class InvokeStreamRelay(PassthroughRelay):
    """InvokeModelWithResponseStream bytes in, Anthropic SSE out: each ``chunk``'s payload is
    written as ``event: <type>`` with its JSON unchanged (``message_start`` carries the
    client's model name); an exception before any event is ``early_error``, after one an
    ``event: error`` that ends the stream."""

    def __init__(self, provider: str, public_model: str,
                 frames: EventStreamDecoder | None = None) -> None:
        """``frames`` is the event stream decoder (tests pass a chosen twin)."""
        super().__init__(provider, public_model)
        self._held = None
        self._frames = EventStreamDecoder() if frames is None else frames
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
            if message.kind == "exception" or message.kind == "error":
                self._exception(message, out)
            elif message.event == "chunk":
                self._chunk(message.payload, out)
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

    def _chunk(self, payload: bytes, out: list[bytes]) -> None:
        try:
            data = binascii.a2b_base64(_part_text(payload), strict_mode=True)
            name = _type_of(data)
        except (msgspec.DecodeError, msgspec.ValidationError, binascii.Error, UnicodeError):
            self._fail(UpstreamError(f"provider {self.provider!r} sent an unreadable chunk",
                                     code="upstream_protocol_error"), out)
            return
        if data.find(b"\n") >= 0 or data.find(b"\r") >= 0:  # it would end the SSE event
            data = _encode(msgspec.json.decode(data))
        if name == "message_start":
            data = with_model(data, self.public_model)
        if name in _WATCHED:
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
