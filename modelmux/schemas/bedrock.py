"""msgspec Structs for Bedrock's Converse answers, ConverseStream event payloads and errors.

Reference: Amazon Bedrock API Reference, "Converse" (``ConverseResponse``: ``output.message``
with ``content`` blocks ``text`` / ``toolUse`` / ``reasoningContent``, ``stopReason``,
``usage``, ``metrics``) and "ConverseStream" (``ConverseStreamOutput`` members messageStart,
contentBlockStart, contentBlockDelta, contentBlockStop, messageStop, metadata; exceptions as
``{"message"}``). Requests are plain dicts built by ``translate.chat_to_converse``.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct


class ToolUse(Struct, rename="camel"):
    tool_use_id: str = ""
    name: str = ""
    input: msgspec.Raw = msgspec.Raw(b"{}")


class ContentBlock(Struct, rename="camel"):
    text: str | None = None
    tool_use: ToolUse | None = None


class Message(Struct):
    role: str = "assistant"
    content: list[ContentBlock] = []


class Output(Struct):
    message: Message | None = None


class TokenUsage(Struct, rename="camel"):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


class ConverseResponse(Struct, rename="camel"):
    output: Output | None = None
    stop_reason: str | None = None
    usage: TokenUsage | None = None


class ToolUseStart(Struct, rename="camel"):
    tool_use_id: str = ""
    name: str = ""


class BlockStart(Struct, rename="camel"):
    tool_use: ToolUseStart | None = None


class ToolUseDelta(Struct):
    input: str = ""


class BlockDelta(Struct, rename="camel"):
    text: str | None = None
    tool_use: ToolUseDelta | None = None


class ContentBlockStart(Struct, rename="camel"):
    start: BlockStart | None = None
    content_block_index: int = 0


class ContentBlockDelta(Struct, rename="camel"):
    delta: BlockDelta | None = None
    content_block_index: int = 0


class MessageStop(Struct, rename="camel"):
    stop_reason: str | None = None


class StreamMetadata(Struct):
    usage: TokenUsage | None = None


class ErrorBody(Struct):
    message: str | None = None
    Message: str | None = None  # some services capitalise it

    @property
    def text(self) -> str:
        return self.message or self.Message or ""


response_decoder = msgspec.json.Decoder(ConverseResponse)
block_start_decoder = msgspec.json.Decoder(ContentBlockStart)
block_delta_decoder = msgspec.json.Decoder(ContentBlockDelta)
message_stop_decoder = msgspec.json.Decoder(MessageStop)
metadata_decoder = msgspec.json.Decoder(StreamMetadata)
error_decoder = msgspec.json.Decoder(ErrorBody)
