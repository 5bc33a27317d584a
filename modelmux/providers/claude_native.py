"""Anthropic Messages requests sent to a Claude endpoint as they came, with no translation.

Reference: Anthropic API "Messages > Create a Message", "Streaming Messages" and "Count Message
tokens"; Google Cloud "Use Claude models" (rawPredict bodies carry ``anthropic_version`` and no
``model``). Only what the endpoint needs changes (model name, the profile's body fields); every
other member keeps its bytes. The answer, or the stream, comes back as the upstream sent it,
with the model name put back to the one the client asked for. ``claude.ClaudeProvider`` hands a
``MessagesCall`` here; the endpoint profile (``claude.ClaudeEndpoint``) is the one it uses.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

import msgspec

from modelmux.codec.sse import SSEDecoder
from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.providers.base import Cache, CallStats, ChatCall, Tokens
from modelmux.schemas import anthropic
from modelmux.schemas.openai_chat import ChatCompletionRequest
from modelmux.translate.messages_errors import error_event, status_and_type
from modelmux.translate.messages_to_chat import upstream_error

if TYPE_CHECKING:
    from modelmux.errors import Headers
    from modelmux.providers.claude_endpoint import ClaudeEndpoint
    from modelmux.providers.transport import ProviderClient, UpstreamStream


class NativeClaude(Protocol):
    """What the native path reads of a Claude provider (``claude.ClaudeProvider``)."""

    name: str
    endpoint: ClaudeEndpoint
    upstream: ProviderClient

_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode
_FRAME_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error"})
"""The events the relay reads; every other one (deltas, pings, block starts) only passes."""
FORWARDED_HEADERS = (b"anthropic-beta",)
"""Client request headers a native call passes on (new features are switched on by them)."""


class MessagesCall(ChatCall):
    """A chat call that carries the client's Messages body, for a native Claude endpoint.

    ``request``/``raw`` are the internal (OpenAI-shaped) form the pipeline's stages saw;
    ``messages_body`` is what the upstream gets, ``forward`` the client headers it gets too.
    """

    __slots__ = ("messages_body", "sent_model", "forward")

    def __init__(self, request: ChatCompletionRequest, raw: bytes, messages_body: bytes,
                 sent_model: str, forward: Headers, **kw: object) -> None:
        """``sent_model`` is the ``model`` in ``messages_body``."""
        super().__init__(request, raw, **kw)  # type: ignore[arg-type]
        self.messages_body = messages_body
        self.sent_model = sent_model
        self.forward = forward


def native_body(body: bytes, *, model: str, model_in_body: bool, fields: dict[str, object],
                sent_model: str) -> bytes:
    """``body`` for the endpoint: ``body`` itself when nothing must change, else only
    ``model`` (set, or removed when the URL names it) and the profile's ``fields`` change.

    Raises:
        msgspec.DecodeError: ``body`` is not a JSON object (the door decoded it already).
    """
    if model_in_body and not fields and model == sent_model:
        return body
    members = _fields.decode(body)
    if model_in_body:
        members["model"] = msgspec.Raw(_encode(model))
    else:
        members.pop("model", None)
    for name, value in fields.items():
        members[name] = msgspec.Raw(_encode(value))
    return _encode(members)


def with_model(body: bytes, model: str) -> bytes:
    """A Message (or ``message_start``'s message) with its ``model`` set to ``model``; ``body``
    unchanged when it already says so or is not a JSON object."""
    try:
        members = _fields.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return body
    name = msgspec.Raw(_encode(model))
    if "model" in members:
        if bytes(members["model"]) == bytes(name):
            return body
        members["model"] = name
    elif members.get("type") == msgspec.Raw(b'"message_start"') and "message" in members:
        members["message"] = msgspec.Raw(with_model(bytes(members["message"]), model))
    else:
        return body
    return _encode(members)


def message_usage(body: bytes) -> tuple[Tokens, Cache | None] | None:
    """A Message body's (input, output) tokens and its (cache read, cache write) part."""
    try:
        usage = anthropic.message_decoder.decode(body).usage
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    read, write = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
    return ((usage.input_tokens + read + write, usage.output_tokens),
            (read, write) if read or write else None)


class PassthroughRelay:
    """Anthropic SSE bytes in, the same bytes out; the events are decoded only to know where
    the stream is (usage, ``message_stop``, an ``error`` first). Until the first event is
    whole it is held back, so ``message_start`` can carry the client's model name."""

    def __init__(self, provider: str, public_model: str) -> None:
        self.provider = provider
        self.public_model = public_model
        self.early_error: ModelMuxError | None = None
        self._decoder = SSEDecoder()
        self._held: bytes | None = b""  # None once the first event went out
        self._started = False
        self._finished = False
        self._input = self._output = 0
        self.cache: Cache | None = None
        self._counted = False
        self._seen = False  # an event was decoded

    @property
    def started(self) -> bool:
        return self._started

    @property
    def finished(self) -> bool:
        return self._finished or self.early_error is not None

    @property
    def usage(self) -> Tokens | None:
        return (self._input, self._output) if self._counted else None

    def feed(self, data: bytes) -> list[bytes]:
        """The bytes to send for ``data`` (none while the first event is incomplete).

        Raises:
            SSEProtocolError: the upstream event stream is malformed.
        """
        if self._finished or self.early_error is not None:
            return []
        for event in self._decoder.feed(data):
            if event.event in _WATCHED:
                self._observe(event.event, event.data)
                if self.early_error is not None:
                    return []
            self._seen = True
        if self._held is None:
            return [data]
        held = self._held + data
        end = _FRAME_END.search(held)
        if end is None:
            self._held = held
            return []
        self._held = None
        self._started = True
        first, rest = held[:end.end()], held[end.end():]
        return [self._rename(first) + rest]

    def close(self) -> list[bytes]:
        """End of the upstream body: an error event unless the stream ended or failed."""
        if self.finished:
            return []
        message = f"provider {self.provider!r} closed the stream before message_stop"
        if not self._started:
            self.early_error = UpstreamError(message, code="upstream_stream_truncated")
            return []
        self._finished = True
        return [error_event("api_error", message)]

    def error_frame(self, error: ModelMuxError) -> bytes:
        """The frame ending a stream that failed after its start: Anthropic's error event."""
        return error_event(status_and_type(error)[1], error.message)

    def _rename(self, frame: bytes) -> bytes:
        """The first event with the client's model name in ``message_start``."""
        head, sep, data = frame.partition(b"data:")
        if not sep or b"message_start" not in frame:
            return frame
        payload = data.strip()
        renamed = with_model(payload, self.public_model)
        if renamed is payload:
            return frame
        return head + b"data: " + renamed + b"\n\n"

    def _observe(self, name: str, data: bytes) -> None:
        """One of the ``_WATCHED`` events."""
        if name == "message_stop":
            self._finished = True
        elif name == "error":
            if not self._seen:  # nothing came before it: the client can still get a status
                self.early_error = _error(self.provider, data)
            else:
                self._finished = True
        elif name in ("message_start", "message_delta"):
            self._count(name, data)

    def _count(self, name: str, data: bytes) -> None:
        try:
            if name == "message_start":
                usage = _start_decoder.decode(data).message.usage
                read = usage.cache_read_input_tokens or 0
                write = usage.cache_creation_input_tokens or 0
                self._input = usage.input_tokens + read + write
                self.cache = (read, write) if read or write else None
                self._output = usage.output_tokens
            else:
                delta = _delta_decoder.decode(data).usage
                if delta is not None and delta.output_tokens is not None:
                    self._output = delta.output_tokens
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        self._counted = True


def _error(provider: str, data: bytes) -> ModelMuxError:
    """"Streaming Messages > Error events" before anything was sent, as a ModelMux error."""
    try:
        error = anthropic.error_decoder.decode(data).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return UpstreamError(f"provider {provider!r} sent an unreadable error event",
                             code="upstream_protocol_error")
    return upstream_error(error.type, error.message)


_start_decoder = msgspec.json.Decoder(anthropic.MessageStart)
_delta_decoder = msgspec.json.Decoder(anthropic.MessageDelta)


async def complete(provider: NativeClaude, call: MessagesCall) -> bytes:
    """The upstream's Message for ``call``, with the client's model name."""
    endpoint = provider.endpoint
    body = _body(provider, call)
    answer = await provider.upstream.fetch(endpoint.url(call.model, False),
                                           [*endpoint.headers, *call.forward], body, call.stats)
    counted = message_usage(answer)
    if counted is not None:
        call.stats.tokens, call.stats.cache = counted
    return with_model(answer, call.public_model)


def stream(provider: NativeClaude, call: MessagesCall) -> UpstreamStream:
    """The upstream's event stream for ``call``, relayed as it comes."""
    endpoint = provider.endpoint
    return provider.upstream.stream(
        endpoint.url(call.model, True),
        [*endpoint.headers, *call.forward, (b"accept", b"text/event-stream")],
        _body(provider, call),
        lambda: PassthroughRelay(provider.name, call.public_model),
        call.stats,
    )


async def count_tokens(provider: NativeClaude, body: bytes, *, model: str, sent_model: str,
                       forward: Headers, stats: CallStats) -> bytes:
    """The endpoint's own token count for a count_tokens ``body``.

    Raises:
        ModelMuxError: the upstream's error, or the endpoint has no count_tokens.
    """
    endpoint = provider.endpoint
    if endpoint.count_url is None:
        raise UpstreamError(f"provider {provider.name!r} has no count_tokens endpoint")
    sent = native_body(body, model=model, model_in_body=True,
                       fields=dict(endpoint.count_fields), sent_model=sent_model)
    return await provider.upstream.fetch(endpoint.count_url(model), [*endpoint.headers, *forward],
                                         sent, stats)


def _body(provider: NativeClaude, call: MessagesCall) -> bytes:
    """The client's body for the endpoint; its own ``stream`` member goes through as sent."""
    endpoint = provider.endpoint
    return native_body(call.messages_body, model=call.model, model_in_body=endpoint.model_in_body,
                       fields=dict(endpoint.body_fields), sent_model=call.sent_model)
