"""A relay for upstreams that stream JSON events over SSE in their own format (Gemini, Cohere).

The SSE bytes are decoded (``codec.sse``), each event's ``data`` goes through the format's
stream translator, and its OpenAI chunk payloads are framed back to back. A translator failure
before anything reached the client becomes ``early_error``, so the client still gets an HTTP
status (or the call stage retries).
"""

from __future__ import annotations

from typing import Protocol

from modelmux.codec.sse import DONE, SSEDecoder, encode_data
from modelmux.errors import ModelMuxError
from modelmux.providers.base import Tokens
from modelmux.schemas.openai_chat import Usage


class EventTranslator(Protocol):
    """What a per-format stream translator offers (see ``translate.gemini_stream``)."""

    usage: Usage | None
    error: ModelMuxError | None
    done: bool

    @property
    def failed(self) -> bool: ...

    def feed(self, data: bytes) -> list[bytes]: ...

    def close(self) -> list[bytes]: ...


class EventRelay:
    """Upstream SSE bytes in, framed OpenAI chunks out (``[DONE]`` once the translator is done)."""

    def __init__(self, translator: EventTranslator) -> None:
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

    def close(self) -> list[bytes]:
        """End of the upstream body: the translator's last chunks, or its error."""
        out: list[bytes] = []
        if not self.finished:
            self._emit(self._translator.close(), out)
        return out

    def _emit(self, payloads: list[bytes], out: list[bytes]) -> None:
        translator = self._translator
        if translator.error is not None and not self._started and not out:
            self.early_error = translator.error
            return
        out.extend(encode_data(payload) for payload in payloads)
        if translator.done:
            out.append(DONE)
        self._started = self._started or bool(out)
