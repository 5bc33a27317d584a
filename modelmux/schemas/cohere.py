"""msgspec Structs for Cohere's v2 chat answers and stream events.

Reference: Cohere API "Chat" (``POST /v2/chat``: response ``message`` with ``content``,
``tool_plan``, ``tool_calls``; ``finish_reason``; ``usage`` with ``billed_units`` and
``tokens``) and "Chat with Streaming" (events typed by ``type``: message-start,
content-start/delta/end, tool-plan-delta, tool-call-start/delta/end, citation-start/end,
message-end). Requests are built as plain dicts by ``translate.chat_to_cohere``.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct


class Function(Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCall(Struct):
    id: str | None = None
    type: str | None = None
    function: Function | None = None


class Content(Struct):
    type: str = "text"
    text: str | None = None


class Message(Struct):
    role: str = "assistant"
    content: list[Content] = []
    tool_plan: str | None = None
    tool_calls: list[ToolCall] = []


class Tokens(Struct):
    input_tokens: float = 0
    output_tokens: float = 0


class Usage(Struct):
    billed_units: Tokens | None = None
    tokens: Tokens | None = None


class ChatResponse(Struct):
    id: str = ""
    finish_reason: str | None = None
    message: Message | None = None
    usage: Usage | None = None


class EventType(Struct):
    type: str


class DeltaContent(Struct):
    text: str | None = None


class DeltaMessage(Struct):
    content: DeltaContent | None = None
    tool_plan: str | None = None
    tool_calls: ToolCall | None = None


class Delta(Struct):
    message: DeltaMessage | None = None


class IndexedEvent(Struct):
    """content-start/delta, tool-plan-delta, tool-call-start/delta: one piece of the message."""

    index: int = 0
    delta: Delta | None = None


class EndDelta(Struct):
    finish_reason: str | None = None
    usage: Usage | None = None
    error: str | None = None


class MessageEnd(Struct):
    delta: EndDelta | None = None


response_decoder = msgspec.json.Decoder(ChatResponse)
event_type_decoder = msgspec.json.Decoder(EventType)
indexed_decoder = msgspec.json.Decoder(IndexedEvent)
end_decoder = msgspec.json.Decoder(MessageEnd)
