"""Translate a Gemini ``streamGenerateContent?alt=sse`` stream into OpenAI chunks, sans I/O.

Reference: Gemini API "Generating content > streamGenerateContent" (each SSE ``data`` is a
``GenerateContentResponse`` holding the new parts; the last one has ``finishReason`` and
``usageMetadata``; there is no end marker, the body just ends) and OpenAI "The chat completion
chunk object". It never raises: a broken stream becomes one OpenAI error payload, then silence.
"""

from __future__ import annotations

from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.schemas import gemini
from modelmux.schemas.openai_chat import Usage
from modelmux.translate.chunks import ChunkWriter
from modelmux.translate.gemini_to_chat import (
    gemini_error,
    gemini_finish_reason,
    gemini_usage,
    tool_call_id,
)


class GeminiStreamTranslator:
    """``GenerateContentResponse`` events in, ``chat.completion.chunk`` payloads out.

    The finish chunk (and the usage chunk when ``include_usage``) is written by ``close()``
    at the end of the body, once the last ``finishReason`` and ``usageMetadata`` are known;
    a body that ends with no ``finishReason`` (and no blocked prompt) is an error.
    """

    def __init__(self, *, model: str, completion_id: str, created: int,
                 include_usage: bool) -> None:
        self.writer = ChunkWriter(model=model, completion_id=completion_id, created=created)
        self.completion_id = completion_id
        self.include_usage = include_usage
        self._meta: gemini.UsageMetadata | None = None
        self.error: ModelMuxError | None = None
        self.done = False
        self._started = False
        self._tools = 0
        self._reason: str | None = None
        self._blocked = False

    @property
    def usage(self) -> Usage | None:
        """The last ``usageMetadata`` as OpenAI usage, built only when asked (not per event)."""
        return None if self._meta is None else gemini_usage(self._meta)

    @property
    def failed(self) -> bool:
        return self.error is not None

    def feed(self, data: bytes) -> list[bytes]:
        """Translate one SSE event's ``data``."""
        if self.done or self.error is not None:
            return []
        try:
            event = gemini.response_decoder.decode(data)
        except (ValueError, RecursionError) as exc:
            return self._fail(UpstreamError(f"Gemini sent an unreadable stream event: {exc}",
                                            code="upstream_protocol_error"))
        if event.error is not None:
            return self._fail(gemini_error(event.error))
        out: list[bytes] = []
        if not self._started:
            self._started = True
            out.append(self.writer.role())
        if event.usage_metadata is not None:
            self._meta = event.usage_metadata
        if event.prompt_feedback is not None and event.prompt_feedback.block_reason:
            self._blocked = True
        for candidate in event.candidates:
            if candidate.index != 0:
                continue
            if candidate.finish_reason:
                self._reason = candidate.finish_reason
            for part in candidate.content.parts if candidate.content is not None else ():
                call = part.function_call
                if call is not None:
                    index = self._tools
                    self._tools += 1
                    call_id = tool_call_id(self.completion_id, index, call.id)
                    out.append(self.writer.tool_start(index, call_id, call.name))
                    out.append(self.writer.arguments(index, bytes(call.args).decode("utf-8")))
                elif part.text and not part.thought:
                    out.append(self.writer.text(part.text))
        return out

    def close(self) -> list[bytes]:
        """End of the body: the finish (and usage) chunk, or an error if it was cut short."""
        if self.done or self.error is not None:
            return []
        if self._reason is None and not self._blocked:
            return self._fail(UpstreamError("Gemini closed the stream before a finishReason",
                                            code="upstream_stream_truncated"))
        self.done = True
        out = [] if self._started else [self.writer.role()]
        reason = ("content_filter" if self._reason is None
                  else gemini_finish_reason(self._reason, self._tools > 0))
        out.append(self.writer.finish(reason))
        usage = self.usage
        if self.include_usage and usage is not None:
            out.append(self.writer.usage(usage))
        return out

    def _fail(self, error: ModelMuxError) -> list[bytes]:
        self.error = error
        return [error.body()]
