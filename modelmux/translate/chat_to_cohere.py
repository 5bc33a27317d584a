"""Translate an OpenAI chat completion request into a Cohere v2 ``/v2/chat`` body.

Reference: Cohere API "Chat" (v2): ``messages`` with roles system, user, assistant
(``content`` or ``tool_plan`` + ``tool_calls``) and tool (``tool_call_id``), ``tools`` in
OpenAI's function shape, ``tool_choice`` REQUIRED/NONE, ``max_tokens``, ``temperature``, ``p``,
``stop_sequences``, ``seed``, penalties and ``response_format``. Pure: a decoded request in, a
plain dict out; the mapping is tabled in docs/providers.md.
"""

from __future__ import annotations

from typing import Any

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    ImagePart,
    NamedToolChoice,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)
from modelmux.translate.unsupported import reject_unsupported

Doc = dict[str, Any]


def chat_to_cohere(req: ChatCompletionRequest, *, model: str, provider: str) -> Doc:
    """The ``/v2/chat`` body for ``req``.

    Raises:
        InvalidRequest: a field Cohere cannot honour, or a malformed message, naming the param.
    """
    reject_unsupported(req, provider, "Cohere")
    body: Doc = {"model": model, "messages": _messages(req)}
    _tools(req, body)
    tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if tokens is not None:
        if tokens < 1:
            raise InvalidRequest("max_tokens must be at least 1", param="max_tokens")
        body["max_tokens"] = tokens
    for name, key in (("temperature", "temperature"), ("top_p", "p"), ("seed", "seed"),
                      ("frequency_penalty", "frequency_penalty"),
                      ("presence_penalty", "presence_penalty")):
        value = getattr(req, name)
        if value is not None:
            body[key] = value
    if req.stop is not None:
        stops = [s for s in ([req.stop] if isinstance(req.stop, str) else req.stop) if s]
        if stops:
            body["stop_sequences"] = stops
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        out: Doc = {"type": "json_object"}
        if fmt.type == "json_schema" and fmt.json_schema is not None and fmt.json_schema.schema:
            out["json_schema"] = fmt.json_schema.schema
        body["response_format"] = out
    if req.stream:
        body["stream"] = True
    return body


def _text(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


def _messages(req: ChatCompletionRequest) -> list[Doc]:
    out: list[Doc] = []
    for i, msg in enumerate(req.messages):
        param = f"messages[{i}]"
        if isinstance(msg, (SystemMessage, DeveloperMessage)):
            out.append({"role": "system", "content": _text(msg.content)})
        elif isinstance(msg, UserMessage):
            out.append({"role": "user", "content": _user_content(msg.content, param)})
        elif isinstance(msg, AssistantMessage):
            turn = _assistant(msg)
            if turn is not None:
                out.append(turn)
        elif isinstance(msg, ToolMessage):
            out.append({"role": "tool", "tool_call_id": msg.tool_call_id,
                        "content": _text(msg.content)})
        else:
            raise InvalidRequest("role 'function' is not supported; use tools", param=param)
    if not any(m["role"] != "system" for m in out):
        raise InvalidRequest("messages must include user or assistant content", param="messages")
    return out


def _user_content(content: str | list[Any], param: str) -> str | list[Doc]:
    if isinstance(content, str):
        return content
    parts: list[Doc] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            parts.append({"type": "image_url", "image_url": {"url": part.image_url.url}})
        else:
            raise InvalidRequest("only text and image parts are supported for Cohere",
                                 param=f"{param}.content[{j}]")
    return parts


def _assistant(msg: AssistantMessage) -> Doc | None:
    """Text with tool calls is the turn's ``tool_plan``, as Cohere writes it; alone, content."""
    text = ""
    if isinstance(msg.content, str):
        text = msg.content
    elif msg.content is not None:
        text = "".join(p.text for p in msg.content if isinstance(p, TextPart))
    if msg.tool_calls:
        turn: Doc = {"role": "assistant", "tool_calls": [
            {"id": c.id, "type": "function",
             "function": {"name": c.function.name, "arguments": c.function.arguments or "{}"}}
            for c in msg.tool_calls]}
        if text:
            turn["tool_plan"] = text
        return turn
    return {"role": "assistant", "content": text} if text else None


def _tools(req: ChatCompletionRequest, body: Doc) -> None:
    """Function tools pass as they are; tool_choice none → NONE, required → REQUIRED, and a
    named function → REQUIRED with only that tool sent."""
    tools: list[Doc] = []
    for i, tool in enumerate(req.tools or ()):
        if tool.type != "function" or tool.function is None:
            raise InvalidRequest("only function tools are supported", param=f"tools[{i}].type")
        fn: Doc = {"name": tool.function.name,
                   "parameters": tool.function.parameters or {"type": "object", "properties": {}}}
        if tool.function.description:
            fn["description"] = tool.function.description
        tools.append({"type": "function", "function": fn})
    choice = req.tool_choice
    if not tools:
        if choice is None or choice in ("auto", "none"):
            return
        raise InvalidRequest("tool_choice needs tools", param="tool_choice")
    if isinstance(choice, NamedToolChoice):
        named = [t for t in tools if t["function"]["name"] == choice.function.name]
        if choice.type != "function" or not named:
            raise InvalidRequest("tool_choice must name one of the function tools",
                                 param="tool_choice.function.name")
        tools, mode = named, "REQUIRED"
    elif choice in (None, "auto"):
        mode = None
    elif choice in ("none", "required"):
        mode = choice.upper()
    else:
        raise InvalidRequest(f"unknown tool_choice {choice!r}", param="tool_choice")
    body["tools"] = tools
    if mode is not None:
        body["tool_choice"] = mode
