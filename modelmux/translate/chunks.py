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
_SLOT = "\x00slot\x00"
_SLOT_JSON = _encode(_SLOT)


class Chunk(msgspec.Struct, omit_defaults=True):
    """``ChatCompletionChunk`` in OpenAI's field order, without ``usage: null`` on each chunk."""

    id: str
    object: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ChunkWriter:
    """Encodes the chunks of one completion (its id, model and creation time).

    Text and argument deltas, the per-event ones, are spliced: the chunk around a string slot
    is encoded once per stream (per tool call from its second fragment for arguments), then
    each delta is one string encode and a join, the same bytes as a whole encode. A call's
    first chunk and first fragment are spliced too, as one encoded tool call in the
    ``tool_calls`` slot of a chunk encoded once per stream (msgspec writes a nested Struct the
    same inside a chunk or alone).
    """

    __slots__ = (
        "_argument_splices",
        "_call_splice",
        "_text_splice",
        "completion_id",
        "created",
        "model",
    )

    def __init__(self, *, model: str, completion_id: str, created: int) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self._text_splice: tuple[bytes, bytes] | None = None
        self._argument_splices: dict[int, tuple[bytes, bytes] | None] = {}
        self._call_splice: tuple[bytes, bytes] | None = None

    def _splice(self, delta: Delta) -> tuple[bytes, bytes]:
        """The chunk bytes around the slot string in ``delta`` (its last string, hence
        ``rpartition``: id and model come first)."""
        head, _, tail = self.chunk(delta).rpartition(_SLOT_JSON)
        return head, tail

    def chunk(self, delta: Delta, finish: str | None = None) -> bytes:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish)
        return _encode(Chunk(self.completion_id, CHUNK_OBJECT, self.created, self.model, [choice]))

    def role(self) -> bytes:
        """The first chunk: the assistant role and empty content."""
        return self.chunk(Delta(role="assistant", content=""))

    def text(self, text: str) -> bytes:
        splice = self._text_splice
        if splice is None:
            splice = self._text_splice = self._splice(Delta(content=_SLOT))
        return splice[0] + _encode(text) + splice[1]

    def _call(self, call: ToolCallDelta) -> bytes:
        """The chunk whose delta holds the one tool call ``call``."""
        splice = self._call_splice
        if splice is None:  # the slot stands where the call goes: encode does not type-check
            splice = self._call_splice = self._splice(Delta(tool_calls=[_SLOT]))  # type: ignore[list-item]
        return splice[0] + _encode(call) + splice[1]

    def tool_start(self, index: int, call_id: str, name: str, arguments: str = "") -> bytes:
        """The one chunk that names tool call ``index``: its id, name and first arguments."""
        return self._call(ToolCallDelta(index=index, id=call_id, type="function", function=(
            FunctionCallDelta(name=name, arguments=arguments))))

    def arguments(self, index: int, fragment: str) -> bytes:
        splices = self._argument_splices
        splice = splices.get(index)
        if splice is None:
            if index not in splices:  # a call's first fragment, often its only one (Gemini)
                splices[index] = None
                return self._call(ToolCallDelta(index=index, function=FunctionCallDelta(
                    arguments=fragment)))
            call = ToolCallDelta(index=index, function=FunctionCallDelta(arguments=_SLOT))
            splice = splices[index] = self._splice(Delta(tool_calls=[call]))
        return splice[0] + _encode(fragment) + splice[1]

    def finish(self, reason: str) -> bytes:
        return self.chunk(Delta(), reason)

    def usage(self, usage: Usage) -> bytes:
        """The ``include_usage`` chunk: no choices, the whole usage."""
        return _encode(Chunk(self.completion_id, CHUNK_OBJECT, self.created, self.model, [],
                             usage))
