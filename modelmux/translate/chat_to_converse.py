"""Translate an OpenAI chat completion request into a Bedrock Converse body.

Reference: Amazon Bedrock API Reference, "Converse" (``messages`` of ``user``/``assistant``
turns with content blocks ``text``, ``image`` (``format``, ``source.bytes`` base64 in JSON),
``toolUse`` and ``toolResult``; ``system``; ``inferenceConfig`` with ``maxTokens``,
``temperature``, ``topP``, ``stopSequences``; ``toolConfig`` with ``tools[].toolSpec`` and
``toolChoice`` ``auto``/``any``/``tool``). The model id is in the URL. Pure: a decoded request
in, a plain dict out; the mapping is tabled in docs/providers.md.
"""

from __future__ import annotations

from typing import Any

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import (
    AssistantMessage,
    ChatCompletionRequest,
    Message,
    NamedToolChoice,
    ToolMessage,
)
from modelmux.translate.chat_to_messages import data_url
from modelmux.translate.sampling import sampling
from modelmux.translate.turns import Block, alternate, assistant_text, json_arguments, user_blocks
from modelmux.translate.unsupported import reject_unsupported

JSON_TOOL = "json_response"
"""The tool that carries a JSON-mode answer (see ``_json_tool``)."""
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg",
                 "image/gif": "gif", "image/webp": "webp"}
"""Image media types Converse reads → its ``format`` names."""


def chat_to_converse(req: ChatCompletionRequest, *, provider: str) -> dict[str, Any]:
    """The Converse (or ConverseStream) body for ``req``.

    Raises:
        InvalidRequest: a field Converse cannot honour, or a malformed message, naming the param.
    """
    _reject_unsupported(req, provider)
    system, messages = _messages(req.messages)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    config = _inference_config(req)
    if config:
        body["inferenceConfig"] = config
    tools = _json_tool(req) if json_mode(req) else _tool_config(req)
    used = _tools_used(messages) if tools is None or json_mode(req) else []
    if used:
        tools = tools or {"tools": []}
        tools["tools"] += [_spec(name, None, None) for name in used if name != JSON_TOOL]
    if tools is not None:
        body["toolConfig"] = tools
    return body


def json_mode(req: ChatCompletionRequest) -> bool:
    """True when the client asked for a JSON answer (``json_object`` or ``json_schema``)."""
    return req.response_format is not None and req.response_format.type != "text"


def _json_tool(req: ChatCompletionRequest) -> dict[str, Any]:
    """JSON mode as Converse can do it: one tool whose input schema is the wanted JSON, forced
    with ``toolChoice``; its input comes back as the answer's content."""
    fmt = req.response_format
    schema = None
    if fmt is not None and fmt.json_schema is not None and fmt.json_schema.schema:
        schema = fmt.json_schema.schema
    spec = _spec(JSON_TOOL, "Give the answer as this tool's input.", schema)
    return {"tools": [spec], "toolChoice": {"tool": {"name": JSON_TOOL}}}


def _tools_used(messages: list[dict[str, Any]]) -> list[str]:
    """Names of the tools the history called: Converse refuses ``toolUse`` and ``toolResult``
    blocks without a ``toolConfig``, so one is declared for them (empty schemas) when the
    request brings none or says ``tool_choice: none``."""
    names: dict[str, None] = {}
    for message in messages:
        for block in message["content"]:
            if "toolUse" in block:
                names[block["toolUse"]["name"]] = None
    if not names and any("toolResult" in b for m in messages for b in m["content"]):
        raise InvalidRequest("tool messages need the assistant tool_calls they answer",
                             param="messages")
    return list(names)


def _spec(name: str, description: str | None, schema: dict[str, Any] | None) -> Block:
    spec: Block = {"name": name, "inputSchema": {
        "json": schema or {"type": "object", "properties": {}}}}
    if description:
        spec["description"] = description
    return {"toolSpec": spec}


def _reject_unsupported(req: ChatCompletionRequest, provider: str) -> None:
    reject_unsupported(req, provider, "Bedrock Converse")
    if json_mode(req) and req.tools:
        raise InvalidRequest("response_format together with tools is not supported for Bedrock "
                             "(JSON mode is itself a forced tool call there)",
                             param="response_format")


def _inference_config(req: ChatCompletionRequest) -> dict[str, Any]:
    config = sampling(req, "maxTokens")
    return config


def _messages(messages: list[Message]) -> tuple[list[Block], list[dict[str, Any]]]:
    """System blocks, and the turns with same-role neighbours merged (Converse alternates)."""
    system, turns = alternate(
        messages, assistant_role="assistant",
        user=lambda content, param: user_blocks(content, param, _image, "Bedrock"),
        assistant=_assistant_blocks, tool=lambda msg, _param: _tool_result(msg))
    return system, [{"role": role, "content": blocks} for role, blocks in turns]


def _image(url: str, param: str) -> Block:
    """A base64 data: URL becomes an ``image`` block; Converse cannot fetch http(s) URLs."""
    if url[:5].lower() != "data:":
        raise InvalidRequest("Bedrock takes images as base64 data: URLs only", param=param)
    media_type, data = data_url(url, param)
    fmt = IMAGE_FORMATS.get(media_type)
    if fmt is None:
        raise InvalidRequest(f"image type {media_type!r} is not one of png, jpeg, gif, webp",
                             param=param)
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _assistant_blocks(msg: AssistantMessage, param: str) -> list[Block]:
    blocks: list[Block] = assistant_text(msg)
    for j, call in enumerate(msg.tool_calls or ()):
        where = f"{param}.tool_calls[{j}].function.arguments"
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.function.name,
                                   "input": json_arguments(call.function.arguments, where)}})
    return blocks


def _tool_result(msg: ToolMessage) -> Block:
    text = msg.content if isinstance(msg.content, str) else "".join(p.text for p in msg.content)
    return {"toolResult": {"toolUseId": msg.tool_call_id, "content": [{"text": text or " "}]}}


def _tool_config(req: ChatCompletionRequest) -> dict[str, Any] | None:
    """Function tools as ``toolSpec``; tool_choice auto → auto, required → any, a named
    function → tool; ``none`` sends no tools (Converse has no such choice) unless the history
    holds tool calls, which need them declared (see ``_tools_used``)."""
    choice = req.tool_choice
    tools: list[Block] = []
    for i, tool in enumerate(req.tools or ()):
        if tool.type != "function" or tool.function is None:
            raise InvalidRequest("only function tools are supported", param=f"tools[{i}].type")
        fn = tool.function
        tools.append(_spec(fn.name, fn.description, fn.parameters))
    if not tools:
        if choice is None or choice in ("auto", "none"):
            return None
        raise InvalidRequest("tool_choice needs tools", param="tool_choice")
    config: dict[str, Any] = {"tools": tools}
    if isinstance(choice, NamedToolChoice):
        if choice.type != "function" or all(t["toolSpec"]["name"] != choice.function.name
                                            for t in tools):
            raise InvalidRequest("tool_choice must name one of the function tools",
                                 param="tool_choice.function.name")
        config["toolChoice"] = {"tool": {"name": choice.function.name}}
    elif choice == "none":
        return None
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice in (None, "auto"):
        config["toolChoice"] = {"auto": {}}
    else:
        raise InvalidRequest(f"unknown tool_choice {choice!r}", param="tool_choice")
    return config
