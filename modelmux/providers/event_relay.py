"""Relays for upstreams that stream JSON events over SSE: the shared ``SSERelay`` (Claude's
``MessagesRelay`` too) and ``EventRelay`` for formats with one event kind (Gemini, Cohere).

The SSE bytes are decoded (``codec.sse``), each event's ``data`` goes through the format's
stream translator, and its OpenAI chunk payloads are framed back to back. A translator failure
before anything reached the client becomes ``early_error``, so the client still gets an HTTP
status (or the call stage retries).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import msgspec

from modelmux.codec.sse import DONE, SSEDecoder, encode_data
from modelmux.errors import Headers, ModelMuxError
from modelmux.providers.base import Cache, CallStats, ChatCall, Tokens, cache_of
from modelmux.providers.transport import ProviderClient, UpstreamStream
from modelmux.schemas.openai_chat import ChatCompletion, Usage

_encode = msgspec.json.Encoder().encode


class StreamTranslator(Protocol):
    """What every upstream stream translator offers a relay."""

    @property
    def usage(self) -> Usage | None: ...

    @property
    def done(self) -> bool: ...

    @property
    def failed(self) -> bool: ...

    def close(self) -> list[bytes]: ...


class EventTranslator(StreamTranslator, Protocol):
    """What a per-format stream translator offers (see ``translate.gemini_stream``)."""

    error: ModelMuxError | None

    def feed(self, data: bytes) -> list[bytes]: ...


Tr = TypeVar("Tr", bound=StreamTranslator)


class SSERelay(Generic[Tr]):
    """The relay over a translator of upstream SSE events: its state, its end and its framing.

    A subclass decodes the events in ``feed`` and says in ``_early`` which translator output,
    before anything reached the client, is an ``early_error`` instead.
    """

    def __init__(self, translator: Tr) -> None:
        self.early_error: ModelMuxError | None = None
        self._translator = translator
        self._decoder = SSEDecoder()
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def finished(self) -> bool:
        t = self._translator
        return t.done or t.failed or self.early_error is not None

    @property
    def usage(self) -> Tokens | None:
        usage = self._translator.usage
        return None if usage is None else (usage.prompt_tokens, usage.completion_tokens)

    @property
    def cache(self) -> Cache | None:
        usage = self._translator.usage
        return None if usage is None else cache_of(usage.prompt_tokens_details)

    def close(self) -> list[bytes]:
        """End of the upstream body: the translator's last chunks, or its error."""
        out: list[bytes] = []
        if not self.finished:
            self._emit(self._translator.close(), out)
        return out

    def _early(self, payloads: list[bytes]) -> ModelMuxError | None:
        """The error ``payloads`` stand for when they would be the first output, else None."""
        raise NotImplementedError

    def _emit(self, payloads: list[bytes], out: list[bytes]) -> None:
        if not self._started and not out:
            error = self._early(payloads)
            if error is not None:
                self.early_error = error
                return
        out.extend(encode_data(payload) for payload in payloads)
        if self._translator.done:
            out.append(DONE)
        self._started = self._started or bool(out)


class EventRelay(SSERelay[EventTranslator]):
    """Upstream SSE bytes in, framed OpenAI chunks out (``[DONE]`` once the translator is done)."""

    def feed(self, data: bytes) -> list[bytes]:
        """Framed chunks completed by ``data``.

        Raises:
            SSEProtocolError: the upstream event stream is malformed.
        """
        out: list[bytes] = []
        if self.finished:
            return out  # what follows the end (or an error) is not the client's
        for event in self._decoder.feed(data):
            if event.data:
                self._emit(self._translator.feed(event.data), out)
                if self.finished:
                    break
        return out

    def _early(self, payloads: list[bytes]) -> ModelMuxError | None:
        return self._translator.error


def chat_answer(completion: ChatCompletion, stats: CallStats) -> bytes:
    """A translated answer as the client's JSON body; its usage goes on ``stats``."""
    if completion.usage is not None:
        stats.tokens = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
        stats.cache = cache_of(completion.usage.prompt_tokens_details)
    return _encode(completion)


def relay_events(upstream: ProviderClient, url: str, headers: Headers, body: bytes, call: ChatCall,
                 translator: Callable[..., EventTranslator]) -> UpstreamStream:
    """The upstream's SSE answer to ``body``, through a new ``translator`` (built with the
    call's model, id, time and ``include_usage``) and ``EventRelay`` each attempt."""

    def relay() -> EventRelay:
        return EventRelay(translator(
            model=call.public_model, completion_id=call.completion_id, created=call.created,
            include_usage=call.include_usage))

    return upstream.stream(url, [*headers, (b"accept", b"text/event-stream")], body, relay,
                          call.stats)
