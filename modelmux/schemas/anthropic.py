"""msgspec Structs for what ModelMux decodes from the Anthropic Messages API: responses and events.

Reference: Anthropic API docs, "Messages > Create a Message" (response) and "Streaming Messages"
(event types). Only the fields the translators read are declared. Blocks and deltas are flat
Structs keyed by a ``type`` string, not tagged unions: the API adds block and delta types over
time, and an unknown one must be skipped, not fail the whole response.
"""

from __future__ import annotations

import msgspec
from msgspec import Raw, Struct

_EMPTY_OBJECT = Raw(b"{}")


class Usage(Struct):
    """``usage`` of a Message (and of ``message_start``); the cache counts may be null."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class DeltaUsage(Struct):
    """``usage`` of ``message_delta``: cumulative counts, any of which may be absent or null."""

    output_tokens: int | None = None
    input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class ContentBlock(Struct):
    """A response content block: ``text``, ``tool_use``, ``thinking``, or a type we skip.

    ``input`` stays raw JSON so a tool call's arguments pass through without a decode/encode.
    """

    type: str
    text: str = ""
    id: str = ""
    name: str = ""
    input: Raw = _EMPTY_OBJECT


class Message(Struct):
    """The non-streaming response body; ``type`` is ``"message"`` (``"error"`` for an error)."""

    type: str
    content: list[ContentBlock] = []
    stop_reason: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)
    id: str = ""
    model: str = ""


class ErrorBody(Struct):
    type: str = "api_error"
    message: str = ""


# Stream events: one small Struct per SSE event name, decoded by a Decoder chosen by that name.


class EventType(Struct):
    """Just the ``type`` of an event, for streams whose SSE ``event:`` line is missing."""

    type: str = ""


class StartMessage(Struct):
    usage: Usage = msgspec.field(default_factory=Usage)


class MessageStart(Struct):
    """``message_start``: the Message shell with empty content and the input usage."""

    message: StartMessage


class StartBlock(Struct):
    type: str
    id: str = ""
    name: str = ""
    text: str = ""
    input: Raw = _EMPTY_OBJECT


class ContentBlockStart(Struct):
    index: int
    content_block: StartBlock


class BlockDelta(Struct):
    """``text_delta`` (text), ``input_json_delta`` (partial_json); other delta types are skipped."""

    type: str
    text: str = ""
    partial_json: str = ""


class ContentBlockDelta(Struct):
    index: int
    delta: BlockDelta


class ContentBlockStop(Struct):
    index: int


class MessageDeltaBody(Struct):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class MessageDelta(Struct):
    """``message_delta``: the stop reason and cumulative usage."""

    delta: MessageDeltaBody = msgspec.field(default_factory=MessageDeltaBody)
    usage: DeltaUsage | None = None


class ErrorEvent(Struct):
    """``error`` (also the body of a non-2xx response): ``{"type":"error","error":{...}}``."""

    error: ErrorBody = msgspec.field(default_factory=ErrorBody)


message_decoder = msgspec.json.Decoder(Message)
error_decoder = msgspec.json.Decoder(ErrorEvent)
