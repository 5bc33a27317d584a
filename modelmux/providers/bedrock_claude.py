"""Claude on Bedrock spoken natively: the client's Messages body through InvokeModel.

Reference: Amazon Bedrock User Guide, "Anthropic Claude Messages API > Request and Response"
(the InvokeModel body is the Messages body without ``model``, with ``"anthropic_version":
"bedrock-2023-05-31"`` and the betas as the list ``anthropic_beta``); API Reference
"InvokeModel" (``POST /model/{modelId}/invoke``), "InvokeModelWithResponseStream"
(``.../invoke-with-response-stream``: an event stream whose ``chunk`` events carry a
``PayloadPart``, ``{"bytes": base64}``, here one Anthropic stream event each, and whose
exceptions are ``:message-type exception`` messages) and "CountTokens" (``POST
/model/{modelId}/count-tokens`` with ``{"input": {"invokeModel": {"body": base64}}}``,
answered ``{"inputTokens": N}``). Bedrock refuses ``model`` and ``stream`` in the body as
extraneous keys; every other member of the client's body keeps its bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Protocol

import msgspec

from modelmux.codec.eventstream import EventStreamDecoder, Message
from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.providers.claude_native import (
    MessagesCall,
    PassthroughRelay,
    message_usage,
    with_model,
)
from modelmux.translate.converse_to_chat import converse_error
from modelmux.translate.messages_errors import error_event, status_and_type

if TYPE_CHECKING:
    from modelmux.errors import Headers
    from modelmux.providers.base import CallStats
    from modelmux.providers.transport import Upstream

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
_CLAUDE = re.compile(r"(?:[a-z]{2,6}\.)?anthropic\.")
"""A Claude model id, bare (``anthropic.claude-...``) or an inference profile (``us.``,
``eu.``, ``apac.``, ``global.`` ...)."""
_WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error"})
"""The events ``PassthroughRelay._observe`` reads; the rest (deltas, pings) only pass."""
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode


class _Part(msgspec.Struct):
    bytes: str


class _Typed(msgspec.Struct):
    type: str


class _Count(msgspec.Struct):
    inputTokens: int


_part = msgspec.json.Decoder(_Part)
_typed = msgspec.json.Decoder(_Typed)
_count = msgspec.json.Decoder(_Count)


class BedrockClaude(Protocol):
    """What this module reads of a ``bedrock.BedrockProvider``."""

    name: str
    headers: Headers
    upstream: Upstream

    def url(self, model: str, operation: str) -> str: ...

    async def signed(self, url: str, headers: Headers, body: bytes) -> Headers: ...


def is_claude(model: str) -> bool:
    """True for a Bedrock model id (or inference profile id) of an Anthropic model."""
    return _CLAUDE.match(model) is not None


def betas(forward: Headers) -> list[str]:
    """The beta names of the client's ``anthropic-beta`` headers (comma-separated lists)."""
    return [name.strip() for key, value in forward if key == b"anthropic-beta"
            for name in value.decode("latin-1").split(",") if name.strip()]


def invoke_body(body: bytes, forward: Headers, *, need_max_tokens: bool = False) -> bytes:
    """The InvokeModel body for a Messages ``body``: no ``model`` or ``stream``, Bedrock's
    ``anthropic_version``, the header betas appended to ``anthropic_beta``; every other member
    as sent. ``need_max_tokens`` adds ``max_tokens: 1`` when absent (a count_tokens body: the
    InvokeModel body requires it, and it does not change the input count).

    Raises:
        msgspec.DecodeError: ``body`` is not a JSON object (the door decoded it already).
    """
    members = _fields.decode(body)
    members.pop("model", None)
    members.pop("stream", None)  # the operation says it; Bedrock refuses the key
    members["anthropic_version"] = msgspec.Raw(_encode(BEDROCK_ANTHROPIC_VERSION))
    wanted = betas(forward)
    if wanted:
        held = members.get("anthropic_beta")
        try:
            kept = msgspec.json.decode(bytes(held), type=list[str]) if held is not None else []
        except (msgspec.DecodeError, msgspec.ValidationError):
            kept = []
        members["anthropic_beta"] = msgspec.Raw(_encode(kept + [b for b in wanted
                                                                  if b not in kept]))
    if need_max_tokens and "max_tokens" not in members:
        members["max_tokens"] = msgspec.Raw(b"1")
    return _encode(members)


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


async def complete(provider: BedrockClaude, call: MessagesCall) -> bytes:
    """The Message InvokeModel answers for ``call``, with the client's model name."""
    body = invoke_body(call.messages_body, call.forward)
    url = provider.url(call.model, "invoke")
    headers = await provider.signed(url, [*provider.headers, (b"accept", b"application/json")],
                                    body)
    answer = await provider.upstream.fetch(url, headers, body, call.stats)
    counted = message_usage(answer)
    if counted is not None:
        call.stats.tokens, call.stats.cache = counted
    return with_model(answer, call.public_model)


async def count_tokens(provider: BedrockClaude, body: bytes, *, model: str, forward: Headers,
                       stats: CallStats) -> bytes:
    """``{"input_tokens": N}`` from Bedrock's CountTokens for a count_tokens ``body``.

    Raises:
        ModelMuxError: Bedrock's error (some models have no CountTokens), or a bad answer.
    """
    invoke = invoke_body(body, forward, need_max_tokens=True)
    sent = _encode({"input": {"invokeModel": {"body": base64.b64encode(invoke).decode()}}})
    url = provider.url(model, "count-tokens")
    headers = await provider.signed(url, [*provider.headers, (b"accept", b"application/json")],
                                    sent)
    answer = await provider.upstream.fetch(url, headers, sent, stats)
    try:
        tokens = _count.decode(answer).inputTokens
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise UpstreamError(f"provider {provider.name!r} sent an unreadable token count",
                            code="upstream_protocol_error") from None
    return _encode({"input_tokens": tokens})
