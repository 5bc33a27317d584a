"""Translate an Anthropic Messages event stream into OpenAI chat completion chunks, sans I/O.

Reference: Anthropic "Streaming Messages" (event flow, delta types, error events) and OpenAI
"The chat completion chunk object" with ``stream_options.include_usage``. Fed one decoded SSE
event at a time, it returns chunk payloads without SSE framing. It never raises: a broken
upstream stream becomes one OpenAI error payload, and then the translator is silent.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import msgspec

from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.schemas import anthropic
from modelmux.schemas.openai_chat import (
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
    Usage,
)
from modelmux.translate.chunks import CHUNK_OBJECT, Chunk
from modelmux.translate.finish_reason import finish_reason
from modelmux.translate.messages_to_chat import chat_usage, upstream_error

_T = TypeVar("_T")
_encode = msgspec.json.Encoder().encode
_SLOT = "\x00slot\x00"
_SLOT_JSON = _encode(_SLOT)


class _State(enum.Enum):
    AWAIT_START = "await_start"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


# Tuples, not sets: membership by identity skips Enum.__hash__ on the per-event path.
_BEFORE = (_State.AWAIT_START,)
_DURING = (_State.STREAMING,)
_ANY_LIVE = (_State.AWAIT_START, _State.STREAMING)


class _Block:
    """One open Anthropic content block: its kind and, for tool_use, the OpenAI tool index."""

    __slots__ = ("kind", "saw_input", "start_input", "tool_index")

    def __init__(self, kind: str, tool_index: int = -1, start_input: bytes = b"") -> None:
        self.kind = kind
        self.tool_index = tool_index
        self.start_input = start_input
        self.saw_input = False


class MessagesStreamTranslator:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` payloads out.

    ``done`` turns True at ``message_stop``; ``failed`` after an error payload was produced
    (upstream ``error`` event, unreadable event, protocol violation, or ``close()`` before
    ``message_stop``). ``usage`` holds the running OpenAI usage once ``message_start`` arrived.
    """

    def __init__(
        self, *, model: str, completion_id: str, created: int, include_usage: bool
    ) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self._state = _State.AWAIT_START
        self._blocks: dict[int, _Block] = {}
        self._tool_count = 0
        self._finish_sent = False
        self._counts = anthropic.Usage()
        self._text_splice = self._splice(Delta(content=_SLOT))
        self._arguments_splices: dict[int, tuple[bytes, bytes]] = {}

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def failed(self) -> bool:
        return self._state is _State.FAILED

    def feed(self, event: str, data: bytes) -> list[bytes]:
        """Translate one SSE event (its ``event:`` name and ``data:`` bytes) into payloads."""
        if self._state is _State.DONE or self._state is _State.FAILED:
            return []
        try:
            if not event:
                event = anthropic_event_type(data)
            route = _ROUTES.get(event)
            if route is None:
                return []  # "Streaming Messages > Other events": new event types are skipped.
            decoder, handler, states = route
            if self._state not in states:
                return self._fail(_protocol_error(f"unexpected {event!r} event"))
            return handler(self, decoder.decode(data))
        except (ValueError, RecursionError) as exc:
            return self._fail(_protocol_error(f"unreadable {event or 'unnamed'!r} event: {exc}"))

    def close(self) -> list[bytes]:
        """End of the upstream body: an error payload unless ``message_stop`` or an error came."""
        if self._state is _State.DONE or self._state is _State.FAILED:
            return []
        return self._fail(
            UpstreamError(
                "the upstream closed the stream before message_stop",
                code="upstream_stream_truncated",
            )
        )

    def _fail(self, error: ModelMuxError) -> list[bytes]:
        self._state = _State.FAILED
        return [error.body()]

    def _on_message_start(self, event: anthropic.MessageStart) -> list[bytes]:
        self._counts = event.message.usage
        self._update_usage()
        self._state = _State.STREAMING
        return [self._chunk(Delta(role="assistant", content=""))]

    def _on_block_start(self, event: anthropic.ContentBlockStart) -> list[bytes]:
        block = event.content_block
        if block.type == "tool_use":
            index = self._tool_count
            self._tool_count += 1
            self._blocks[event.index] = _Block("tool", index, bytes(block.input))
            call = ToolCallDelta(
                index=index,
                id=block.id,
                type="function",
                function=FunctionCallDelta(name=block.name, arguments=""),
            )
            return [self._chunk(Delta(tool_calls=[call]))]
        if block.type == "text":
            self._blocks[event.index] = _Block("text")
            return [self._text(block.text)] if block.text else []
        self._blocks[event.index] = _Block("other")  # thinking, redacted_thinking, server tools
        return []

    def _on_block_delta(self, event: anthropic.ContentBlockDelta) -> list[bytes]:
        block = self._blocks.get(event.index)
        if block is None:
            return self._fail(_protocol_error(f"delta for content block {event.index} not open"))
        delta = event.delta
        if block.kind == "text" and delta.type == "text_delta":
            return [self._text(delta.text)] if delta.text else []
        if block.kind == "tool" and delta.type == "input_json_delta":
            block.saw_input = True
            if delta.partial_json:
                return [self._arguments(block.tool_index, delta.partial_json)]
        return []  # thinking_delta, signature_delta, citations_delta: dropped

    def _on_block_stop(self, event: anthropic.ContentBlockStop) -> list[bytes]:
        block = self._blocks.pop(event.index, None)
        if block is None:
            return self._fail(_protocol_error(f"stop for content block {event.index} not open"))
        if block.kind == "tool" and not block.saw_input and msgspec.json.decode(block.start_input):
            # An input given whole in content_block_start, with no input_json_delta after it.
            return [self._arguments(block.tool_index, block.start_input.decode("utf-8"))]
        return []

    def _on_message_delta(self, event: anthropic.MessageDelta) -> list[bytes]:
        if event.usage is not None:
            self._merge_counts(event.usage)
        if event.delta.stop_reason is None or self._finish_sent:
            return []
        return [self._finish(finish_reason(event.delta.stop_reason))]

    def _on_message_stop(self, event: anthropic.EventType) -> list[bytes]:
        self._state = _State.DONE
        out = [] if self._finish_sent else [self._finish(finish_reason(None))]
        if self.include_usage and self.usage is not None:
            shell = Chunk(
                self.completion_id, CHUNK_OBJECT, self.created, self.model, [], self.usage
            )
            out.append(_encode(shell))
        return out

    def _on_ping(self, event: anthropic.EventType) -> list[bytes]:
        return []

    def _on_error(self, event: anthropic.ErrorEvent) -> list[bytes]:
        return self._fail(upstream_error(event.error.type, event.error.message))

    def _merge_counts(self, delta: anthropic.DeltaUsage) -> None:
        """``message_delta`` counts are cumulative: each one given replaces the earlier value."""
        counts = self._counts
        self._counts = anthropic.Usage(
            input_tokens=_pick(delta.input_tokens, counts.input_tokens),
            output_tokens=_pick(delta.output_tokens, counts.output_tokens),
            cache_creation_input_tokens=_pick(
                delta.cache_creation_input_tokens, counts.cache_creation_input_tokens
            ),
            cache_read_input_tokens=_pick(
                delta.cache_read_input_tokens, counts.cache_read_input_tokens
            ),
        )
        self._update_usage()

    def _update_usage(self) -> None:
        c = self._counts
        self.usage = chat_usage(
            c.input_tokens,
            c.output_tokens,
            c.cache_creation_input_tokens,
            c.cache_read_input_tokens,
        )

    def _chunk(self, delta: Delta, finish: str | None = None) -> bytes:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish)
        chunk = Chunk(self.completion_id, CHUNK_OBJECT, self.created, self.model, [choice])
        return _encode(chunk)

    def _finish(self, reason: str) -> bytes:
        self._finish_sent = True
        return self._chunk(Delta(), reason)

    def _splice(self, delta: Delta) -> tuple[bytes, bytes]:
        """The chunk bytes around a string slot in ``delta``, so a delta is one encode + join.

        The slot is the last string of the chunk (id and model come first), hence rpartition.
        """
        head, _, tail = self._chunk(delta).rpartition(_SLOT_JSON)
        return head, tail

    def _text(self, text: str) -> bytes:
        head, tail = self._text_splice
        return head + _encode(text) + tail

    def _arguments(self, tool_index: int, fragment: str) -> bytes:
        splice = self._arguments_splices.get(tool_index)
        if splice is None:
            call = ToolCallDelta(index=tool_index, function=FunctionCallDelta(arguments=_SLOT))
            splice = self._arguments_splices[tool_index] = self._splice(Delta(tool_calls=[call]))
        return splice[0] + _encode(fragment) + splice[1]


def _pick(value: _T | None, previous: _T) -> _T:
    return previous if value is None else value


def _protocol_error(message: str) -> UpstreamError:
    return UpstreamError(message, code="upstream_protocol_error")


_event_type_decoder = msgspec.json.Decoder(anthropic.EventType)


def anthropic_event_type(data: bytes) -> str:
    """The ``type`` inside an event's data, for streams sent without ``event:`` lines.

    Raises:
        ValueError: the data is not a JSON object with a string ``type`` (msgspec.DecodeError,
            or UnicodeDecodeError for invalid UTF-8).
        RecursionError: the data nests deeper than the decoder follows.
    """
    return _event_type_decoder.decode(data).type


_Handler = Callable[[MessagesStreamTranslator, Any], list[bytes]]
_ROUTES: Mapping[str, tuple[msgspec.json.Decoder[Any], _Handler, tuple[_State, ...]]] = (
    MappingProxyType(
        {
            "message_start": (
                msgspec.json.Decoder(anthropic.MessageStart),
                MessagesStreamTranslator._on_message_start,
                _BEFORE,
            ),
            "content_block_start": (
                msgspec.json.Decoder(anthropic.ContentBlockStart),
                MessagesStreamTranslator._on_block_start,
                _DURING,
            ),
            "content_block_delta": (
                msgspec.json.Decoder(anthropic.ContentBlockDelta),
                MessagesStreamTranslator._on_block_delta,
                _DURING,
            ),
            "content_block_stop": (
                msgspec.json.Decoder(anthropic.ContentBlockStop),
                MessagesStreamTranslator._on_block_stop,
                _DURING,
            ),
            "message_delta": (
                msgspec.json.Decoder(anthropic.MessageDelta),
                MessagesStreamTranslator._on_message_delta,
                _DURING,
            ),
            "message_stop": (
                _event_type_decoder,
                MessagesStreamTranslator._on_message_stop,
                _DURING,
            ),
            "ping": (_event_type_decoder, MessagesStreamTranslator._on_ping, _ANY_LIVE),
            "error": (
                msgspec.json.Decoder(anthropic.ErrorEvent),
                MessagesStreamTranslator._on_error,
                _ANY_LIVE,
            ),
        }
    )
)
"""Event name → (decoder of its data, handler, states it may arrive in): the transition table."""
