"""msgspec Structs for the request body of Anthropic's ``POST /v1/messages`` (the front door).

Reference: Anthropic API "Messages > Create a Message" (body parameters) and "Count Message
tokens". Decoding validates types and names the offending field. Content blocks are one flat
Struct keyed by ``type`` rather than a tagged union, so a block type added to the API later
decodes and is passed on (native path) or named as dropped (translated path), never a 400.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Raw, Struct


_ABSENT = Raw(b"null")


class Block(Struct):
    """A request content block: text, image, document, tool_use, tool_result, thinking, …

    ``input`` stays raw JSON (``null`` when absent): a tool call's input is passed on without
    a decode. ``content`` is a tool_result's (a string or blocks).
    """

    type: str
    text: str | None = None
    source: dict[str, Any] | None = None
    id: str | None = None
    name: str | None = None
    input: Raw = _ABSENT
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None
    cache_control: Any = None


class InputMessage(Struct):
    role: str
    content: str | list[Block]


class SystemBlock(Struct):
    type: str
    text: str = ""
    cache_control: Any = None


class ToolDef(Struct):
    """A tool: a custom tool has ``input_schema``; a server tool (web search, bash, …) a
    versioned ``type`` instead."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None
    cache_control: Any = None


class ToolChoice(Struct):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(Struct):
    user_id: str | None = None


class MessagesRequest(Struct):
    """The body of ``POST /v1/messages``; ``max_tokens`` is required, as upstream."""

    model: str
    messages: list[InputMessage]
    max_tokens: int
    system: str | list[SystemBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Any = None
    metadata: Metadata | None = None
    stream: bool | None = None


class CountTokensRequest(Struct):
    """The body of ``POST /v1/messages/count_tokens``: a Messages request without
    ``max_tokens`` or sampling."""

    model: str
    messages: list[InputMessage]
    system: str | list[SystemBlock] | None = None
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Any = None


request_decoder = msgspec.json.Decoder(MessagesRequest)
count_decoder = msgspec.json.Decoder(CountTokensRequest)
fields_decoder = msgspec.json.Decoder(dict[str, Raw])
"""The top-level members of a body, values undecoded: for the fields a door does not know."""

KNOWN_FIELDS = frozenset(MessagesRequest.__struct_fields__)
