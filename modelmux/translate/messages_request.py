"""Translate an Anthropic Messages request into the internal call (OpenAI chat's shape).

Reference: Anthropic API "Messages > Create a Message" (body, content blocks, tools,
tool_choice) and OpenAI "Chat > Create chat completion". Pure: a decoded request in, a plain
dict and the names of the fields it had to drop out. What each field becomes is tabled in
docs/messages.md; a field with no equivalent is dropped and named, never silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from modelmux.errors import InvalidRequest
from modelmux.schemas.anthropic_request import (
    KNOWN_FIELDS,
    Block,
    InputMessage,
    MessagesRequest,
    SystemBlock,
    ToolChoice,
)

Json = dict[str, Any]

DROPPED_FIELDS = ("top_k", "thinking")
"""Top-level Messages fields an OpenAI-format provider has no equivalent for."""
_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


class Dropped:
    """The names of what a translation left out, in first-seen order, each once."""

    def __init__(self) -> None:
        self.names: dict[str, None] = {}

    def add(self, name: str) -> None:
        self.names[name] = None

    def header(self) -> bytes:
        """``x-modelmux-dropped-fields``'s value (empty when nothing was dropped)."""
        return ", ".join(self.names).encode("ascii", "replace")


def messages_to_chat_request(req: MessagesRequest, fields: Iterable[str], *,
                             stream: bool) -> tuple[Json, Dropped]:
    """The OpenAI chat request for ``req``, and what was dropped on the way.

    ``fields`` are the body's top-level member names: those the door does not know are named
    as dropped too. A streamed call asks for usage in the final chunk.

    Raises:
        InvalidRequest: a turn or block that cannot be expressed (naming the param).
    """
    dropped = Dropped()
    for name in fields:
        if name not in KNOWN_FIELDS:
            dropped.add(name)
    for name in DROPPED_FIELDS:
        if getattr(req, name) is not None:
            dropped.add(name)
    if req.max_tokens < 1:
        raise InvalidRequest("max_tokens: must be at least 1", param="max_tokens")
    if not req.messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    out: Json = {"model": req.model, "messages": [], "max_tokens": req.max_tokens}
    messages: list[Json] = out["messages"]
    system = _system(req.system, dropped)
    if system:
        messages.append({"role": "system", "content": system})
    for i, message in enumerate(req.messages):
        messages.extend(_turn(message, f"messages.{i}", dropped))
    if req.stop_sequences:
        out["stop"] = req.stop_sequences
    for name in ("temperature", "top_p"):
        value = getattr(req, name)
        if value is not None:
            out[name] = value
    if req.metadata is not None and req.metadata.user_id:
        out["user"] = req.metadata.user_id
    if req.tools:
        out["tools"] = [_tool(i, tool, dropped) for i, tool in enumerate(req.tools)]
    if req.tool_choice is not None:
        _tool_choice(req.tool_choice, out)
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out, dropped


def _system(system: str | list[SystemBlock] | None, dropped: Dropped) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    texts = []
    for block in system:
        if block.cache_control is not None:
            dropped.add("cache_control")
        texts.append(block.text)
    return "\n\n".join(texts)


def _turn(message: InputMessage, param: str, dropped: Dropped) -> list[Json]:
    """One Messages turn as OpenAI messages: a user turn's tool_result blocks become ``tool``
    messages (first, as OpenAI wants them right after the assistant's calls), an assistant
    turn's tool_use blocks its ``tool_calls``.

    Raises:
        InvalidRequest: an unknown role, or a block that cannot be expressed.
    """
    content = message.content
    if message.role == "user":
        if isinstance(content, str):
            return [{"role": "user", "content": content}]
        tools: list[Json] = []
        parts: list[Json] = []
        for j, block in enumerate(content):
            where = f"{param}.content.{j}"
            if block.cache_control is not None:
                dropped.add("cache_control")
            if block.type == "tool_result":
                tools.append(_tool_result(block, where, dropped))
            elif block.type == "text":
                parts.append({"type": "text", "text": block.text or ""})
            elif block.type in ("image", "document"):
                parts.append(_media(block, where))
            else:
                dropped.add(f"{block.type} blocks")
        if parts:
            tools.append({"role": "user", "content": parts})
        return tools
    if message.role == "assistant":
        if isinstance(content, str):
            return [{"role": "assistant", "content": content}]
        texts: list[str] = []
        calls: list[Json] = []
        for j, block in enumerate(content):
            if block.cache_control is not None:
                dropped.add("cache_control")
            if block.type == "text":
                texts.append(block.text or "")
            elif block.type == "tool_use":
                calls.append(_tool_use(block, f"{param}.content.{j}"))
            else:  # thinking, redacted_thinking, server tool blocks
                dropped.add(f"{block.type} blocks")
        turn: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
        if calls:
            turn["tool_calls"] = calls
        return [turn]
    raise InvalidRequest(f"{param}.role: Input should be 'user' or 'assistant'",
                         param=f"{param}.role")


def _tool_use(block: Block, param: str) -> Json:
    if not block.id or not block.name:
        raise InvalidRequest(f"{param}: a tool_use block needs an id and a name", param=param)
    given = bytes(block.input)
    arguments = "{}" if given == b"null" else given.decode("utf-8")
    return {"id": block.id, "type": "function",
            "function": {"name": block.name, "arguments": arguments}}


def _tool_result(block: Block, param: str, dropped: Dropped) -> Json:
    """A tool_result block as an OpenAI ``tool`` message; its text only (an image in a tool
    result has no place in a tool message and is named as dropped)."""
    if not block.tool_use_id:
        raise InvalidRequest(f"{param}.tool_use_id: Field required", param=f"{param}.tool_use_id")
    content = block.content
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        pieces = []
        for part in content:
            if part.type == "text":
                pieces.append(part.text or "")
            else:
                dropped.add(f"tool_result {part.type} blocks")
        text = "\n".join(pieces)
    if block.is_error:
        dropped.add("tool_result.is_error")
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _media(block: Block, param: str) -> Json:
    """An image (base64 or url source) as an ``image_url`` part; a base64 PDF document as a
    ``file`` part.

    Raises:
        InvalidRequest: a source kind with no OpenAI equivalent.
    """
    source = block.source or {}
    kind = source.get("type")
    if kind == "base64":
        url = f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"
        if block.type == "image":
            return {"type": "image_url", "image_url": {"url": url}}
        return {"type": "file", "file": {"file_data": url}}
    if kind == "url" and block.type == "image":
        return {"type": "image_url", "image_url": {"url": str(source.get("url", ""))}}
    raise InvalidRequest(f"{param}.source: a {block.type} source of type {kind!r} cannot be sent "
                         "to this model's provider", param=f"{param}.source")


def _tool(i: int, tool: Any, dropped: Dropped) -> Json:
    """A custom tool as an OpenAI function tool.

    Raises:
        InvalidRequest: a server tool (a versioned ``type``), which only Claude runs.
    """
    if tool.type not in (None, "custom") or tool.input_schema is None:
        raise InvalidRequest(f"tools.{i}: the server tool {tool.type or tool.name!r} is only "
                             "available on Claude providers", param=f"tools.{i}")
    if tool.cache_control is not None:
        dropped.add("cache_control")
    function: Json = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice, out: Json) -> None:
    """auto, any → required, none, tool → a named function ("Tool use > Forcing tool use").

    Raises:
        InvalidRequest: an unknown type, or ``tool`` without a name.
    """
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice.name: Field required", param="tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice.type in _CHOICES:
        out["tool_choice"] = _CHOICES[choice.type]
    else:
        raise InvalidRequest(f"tool_choice.type: unknown type {choice.type!r}; expected auto, "
                             "any, tool or none", param="tool_choice.type")
    if choice.disable_parallel_tool_use and choice.type != "none":
        out["parallel_tool_calls"] = False


def encode(request: Json) -> bytes:
    """The internal request's JSON bytes."""
    return msgspec.json.encode(request)
