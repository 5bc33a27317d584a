"""Translate a Cohere v2 chat stream into OpenAI chat completion chunks, sans I/O.

Reference: Cohere "Chat with Streaming" (v2 events, each ``data`` typed by ``type``:
message-start, content-start/delta/end, tool-plan-delta, tool-call-start/delta/end,
citation-start/end, message-end with ``finish_reason`` and ``usage``) and OpenAI "The chat
completion chunk object". It never raises: a broken stream becomes one OpenAI error payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.schemas import cohere
from modelmux.schemas.openai_chat import Usage
from modelmux.translate.chunks import ChunkWriter
from modelmux.translate.cohere_to_chat import cohere_failed, cohere_finish_reason, cohere_usage


class CohereStreamTranslator:
    """Cohere stream events in, ``chat.completion.chunk`` payloads out; ``done`` at message-end.

    Text from content-delta and tool-plan-delta is content; tool calls get indexes 0..n-1 in
    the order they start, their id and name once, then argument fragments.
    """

    def __init__(self, *, model: str, completion_id: str, created: int,
                 include_usage: bool) -> None:
        self.writer = ChunkWriter(model=model, completion_id=completion_id, created=created)
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.error: ModelMuxError | None = None
        self.done = False
        self._started = False
        self._tools: dict[int, int] = {}  # Cohere's tool call index -> the client's

    @property
    def failed(self) -> bool:
        return self.error is not None

    def feed(self, data: bytes) -> list[bytes]:
        """Translate one SSE event's ``data``."""
        if self.done or self.error is not None:
            return []
        try:
            kind = cohere.event_type_decoder.decode(data).type
            route = _ROUTES.get(kind)
            if route is None:
                return []  # citations, debug, content-end, tool-call-end, new event types
            decoder, handler = route
            event = decoder.decode(data)
        except (ValueError, RecursionError) as exc:
            return self._fail(UpstreamError(f"Cohere sent an unreadable stream event: {exc}",
                                            code="upstream_protocol_error"))
        out: list[bytes] = []
        if not self._started and kind != "message-start":
            self._started = True  # held back so a failure right after message-start is early
            out.append(self.writer.role())
        return handler(self, event, out)

    def close(self) -> list[bytes]:
        """End of the body: an error unless message-end (or an error) came."""
        if self.done or self.error is not None:
            return []
        return self._fail(UpstreamError("Cohere closed the stream before message-end",
                                        code="upstream_stream_truncated"))

    def _fail(self, error: ModelMuxError) -> list[bytes]:
        self.error = error
        return [error.body()]

    def _on_start(self, event: Any, out: list[bytes]) -> list[bytes]:
        return out

    def _on_text(self, event: cohere.IndexedEvent, out: list[bytes]) -> list[bytes]:
        message = event.delta.message if event.delta is not None else None
        if message is not None:
            text = message.content.text if message.content is not None else message.tool_plan
            if text:
                out.append(self.writer.text(text))
        return out

    def _on_tool_start(self, event: cohere.IndexedEvent, out: list[bytes]) -> list[bytes]:
        call = _call(event)
        index = self._tools.setdefault(event.index, len(self._tools))
        fn = call.function if call is not None else None
        name = fn.name if fn is not None and fn.name else ""
        call_id = call.id if call is not None and call.id else f"call_{index}"
        out.append(self.writer.tool_start(index, call_id, name))
        if fn is not None and fn.arguments:
            out.append(self.writer.arguments(index, fn.arguments))
        return out

    def _on_tool_delta(self, event: cohere.IndexedEvent, out: list[bytes]) -> list[bytes]:
        call = _call(event)
        index = self._tools.get(event.index)
        if index is None:
            return self._fail(UpstreamError(f"tool-call-delta for tool call {event.index} "
                                            "that never started", code="upstream_protocol_error"))
        if call is not None and call.function is not None and call.function.arguments:
            out.append(self.writer.arguments(index, call.function.arguments))
        return out

    def _on_end(self, event: cohere.MessageEnd, out: list[bytes]) -> list[bytes]:
        delta = event.delta or cohere.EndDelta()
        if delta.usage is not None:
            self.usage = cohere_usage(delta.usage)
        if delta.finish_reason == "ERROR":
            return self._fail(cohere_failed(delta.error))
        self.done = True
        out.append(self.writer.finish(cohere_finish_reason(delta.finish_reason)))
        if self.include_usage and self.usage is not None:
            out.append(self.writer.usage(self.usage))
        return out


def _call(event: cohere.IndexedEvent) -> cohere.ToolCall | None:
    message = event.delta.message if event.delta is not None else None
    return message.tool_calls if message is not None else None


_Handler = Callable[[CohereStreamTranslator, Any, list[bytes]], list[bytes]]
_ROUTES: Mapping[str, tuple[Any, _Handler]] = MappingProxyType({
    "message-start": (cohere.event_type_decoder, CohereStreamTranslator._on_start),
    "content-start": (cohere.indexed_decoder, CohereStreamTranslator._on_text),
    "content-delta": (cohere.indexed_decoder, CohereStreamTranslator._on_text),
    "tool-plan-delta": (cohere.indexed_decoder, CohereStreamTranslator._on_text),
    "tool-call-start": (cohere.indexed_decoder, CohereStreamTranslator._on_tool_start),
    "tool-call-delta": (cohere.indexed_decoder, CohereStreamTranslator._on_tool_delta),
    "message-end": (cohere.end_decoder, CohereStreamTranslator._on_end),
})
"""Event type → (decoder of its data, handler); other types are skipped."""
