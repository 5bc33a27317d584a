"""OpenAI ``chat.completion.chunk`` payloads for the stream translators of other formats.

Reference: OpenAI "The chat completion chunk object" and ``stream_options.include_usage``.
One ``ChunkWriter`` per stream: the role chunk, text and tool-call deltas (index, id and name
once, then argument fragments), one finish chunk, and the final usage chunk with no choices.
"""

from __future__ import annotations

import msgspec

from modelmux.schemas.openai_chat import (
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
    Usage,
)

_encode = msgspec.json.Encoder().encode
CHUNK_OBJECT = "chat.completion.chunk"


class Chunk(msgspec.Struct, omit_defaults=True):
    """``ChatCompletionChunk`` in OpenAI's field order, without ``usage: null`` on each chunk."""

    id: str
    object: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ChunkWriter:
    """Encodes the chunks of one completion (its id, model and creation time)."""

    __slots__ = ("completion_id", "created", "model")

    def __init__(self, *, model: str, completion_id: str, created: int) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created

    def chunk(self, delta: Delta, finish: str | None = None) -> bytes:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish)
        return _encode(Chunk(self.completion_id, CHUNK_OBJECT, self.created, self.model, [choice]))

    def role(self) -> bytes:
        """The first chunk: the assistant role and empty content."""
        return self.chunk(Delta(role="assistant", content=""))

    def text(self, text: str) -> bytes:
        return self.chunk(Delta(content=text))

    def tool_start(self, index: int, call_id: str, name: str, arguments: str = "") -> bytes:
        """The one chunk that names tool call ``index``: its id, name and first arguments."""
        call = ToolCallDelta(index=index, id=call_id, type="function",
                             function=FunctionCallDelta(name=name, arguments=arguments))
        return self.chunk(Delta(tool_calls=[call]))

    def arguments(self, index: int, fragment: str) -> bytes:
        call = ToolCallDelta(index=index, function=FunctionCallDelta(arguments=fragment))
        return self.chunk(Delta(tool_calls=[call]))

    def finish(self, reason: str) -> bytes:
        return self.chunk(Delta(), reason)

    def usage(self, usage: Usage) -> bytes:
        """The ``include_usage`` chunk: no choices, the whole usage."""
        return _encode(Chunk(self.completion_id, CHUNK_OBJECT, self.created, self.model, [],
                             usage))
