"""The one Anthropic-Messages-format provider; Claude endpoints differ only by a profile.

Reference: Anthropic API "Messages > Create a Message" and "Streaming Messages". The request
is translated once by ``translate.chat_to_messages`` and the answer by ``messages_to_chat`` or
``MessagesStreamTranslator``. A ``ClaudeEndpoint`` declares what differs per endpoint (URL,
auth, fixed headers, body tweaks); ``anthropic.py`` and ``vertex.py`` only build one.
"""

from __future__ import annotations


import msgspec

from modelmux.errors import InvalidRequest, ModelMuxError, UpstreamError
from modelmux.providers import claude_native
from modelmux.providers.base import ChatCall, Provider, RetryPolicy
from modelmux.providers.claude_endpoint import ClaudeEndpoint
from modelmux.providers.event_relay import SSERelay
from modelmux.providers.errors import error_from_payload
from modelmux.providers.transport import ProviderClient, UpstreamStream
from modelmux.schemas import anthropic
from modelmux.translate import (
    MessagesStreamTranslator,
    chat_to_messages,
    messages_to_chat,
    upstream_error,
)
from modelmux.upstream import ConnectionPool, Timeouts

_encode = msgspec.json.Encoder().encode


class MessagesRelay(SSERelay[MessagesStreamTranslator]):
    """Anthropic SSE bytes in, OpenAI SSE chunks out, through the shared stream translator.

    An ``error`` event before any output, or a translator failure on the very first event,
    becomes ``early_error`` so the client still gets an HTTP status (or the call is retried).
    """

    def __init__(self, translator: MessagesStreamTranslator, provider: str) -> None:
        super().__init__(translator)
        self.provider = provider

    def feed(self, data: bytes) -> list[bytes]:
        """Framed OpenAI chunks completed by ``data`` (``[DONE]`` after ``message_stop``).

        Raises:
            SSEProtocolError: the upstream event stream is malformed.
        """
        out: list[bytes] = []
        for event in self._decoder.feed(data):
            name = "" if event.event == "message" else event.event
            if not self._started and not out and name == "error":
                self.early_error = self._error_event(event.data)
                return []
            self._emit(self._translator.feed(name, event.data), out)
            if self.finished:
                break
        return out

    def _early(self, payloads: list[bytes]) -> ModelMuxError | None:
        """A failure on the first event: the provider's error payload, as its error."""
        if not self._translator.failed or len(payloads) != 1:
            return None
        return error_from_payload(self.provider, payloads[0]) or UpstreamError(
            f"provider {self.provider!r} sent an unreadable stream")

    def _error_event(self, data: bytes) -> ModelMuxError:
        """"Streaming Messages > Error events": ``{"type": "error", "error": {type, message}}``."""
        try:
            error = anthropic.error_decoder.decode(data).error
        except (msgspec.DecodeError, msgspec.ValidationError):
            return UpstreamError(f"provider {self.provider!r} sent an unreadable error event",
                                 code="upstream_protocol_error")
        return upstream_error(error.type, error.message)


class ClaudeProvider(Provider):
    """Claude through any endpoint profile; subclasses set ``type`` and build the profile."""

    type = "claude"

    def __init__(
        self,
        name: str,
        models: list[str],
        endpoint: ClaudeEndpoint,
        pool: ConnectionPool,
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        default_max_tokens: int,
        http2: bool | None = None,
    ) -> None:
        super().__init__(name, models)
        self.endpoint = endpoint
        self.default_max_tokens = default_max_tokens
        self.retry = retry
        self.upstream = ProviderClient(name, pool, endpoint.auth, timeouts, retry, http2=http2)

    def speaks_messages(self, model: str) -> bool:
        """True when upstream ``model`` is served in Messages format (the Messages door and
        count_tokens then go native); Vertex also serves Gemini models, which are not."""
        return True

    def body(self, call: ChatCall) -> bytes:
        """The Messages request body for ``call``, with the profile's tweaks.

        Raises:
            InvalidRequest: the request asks for something Claude cannot do (``n`` > 1, …);
                the message names this provider, so a client knows which deployment refused.
        """
        model = call.model if self.endpoint.model_in_body else None
        try:
            body = chat_to_messages(call.request, model=model,
                                    default_max_tokens=self.default_max_tokens)
        except InvalidRequest as exc:
            raise InvalidRequest(f"provider {self.name!r} ({self.type}): {exc.message}",
                                 param=exc.param, code=exc.code) from None
        body.update(self.endpoint.body_fields)
        return _encode(body)

    async def complete(self, call: ChatCall) -> bytes:
        if isinstance(call, claude_native.MessagesCall):  # the Messages door: no translation
            return await claude_native.complete(self, call)
        body = self.body(call)
        answer = await self.upstream.fetch(self.endpoint.url(call.model, False),
                                           self.endpoint.headers, body, call.stats)
        completion = messages_to_chat(answer, model=call.public_model,
                                      completion_id=call.completion_id, created=call.created)
        return _encode(completion)

    def stream(self, call: ChatCall) -> UpstreamStream:
        """See ``Provider.stream``; a request Claude cannot serve raises here, before any I/O."""
        if isinstance(call, claude_native.MessagesCall):
            return claude_native.stream(self, call)
        body = self.body(call)
        return self.upstream.stream(
            self.endpoint.url(call.model, True),
            [*self.endpoint.headers, (b"accept", b"text/event-stream")],
            body,
            lambda: MessagesRelay(self._translator(call), self.name),
            call.stats,
        )

    def _translator(self, call: ChatCall) -> MessagesStreamTranslator:
        return MessagesStreamTranslator(model=call.public_model, completion_id=call.completion_id,
                                        created=call.created, include_usage=call.include_usage)
