"""Translate an OpenAI chat completion request into a Gemini ``generateContent`` body.

Reference: Gemini API "Generating content" (``contents``/``parts``, ``systemInstruction``,
``generationConfig``), "Function calling" (``tools[].functionDeclarations``, ``toolConfig``,
``functionCall``/``functionResponse`` parts) and the ``Schema`` object (an OpenAPI subset).
Pure: a decoded request in, a plain dict out; the mapping is tabled in docs/providers.md.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import msgspec

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
from modelmux.translate.turns import alternate, assistant_text, json_arguments, user_blocks
from modelmux.translate.unsupported import reject_unsupported

Part = dict[str, Any]

SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
})
"""The ``Schema`` fields Gemini accepts; others (``additionalProperties``, ``$schema``, ...)
are dropped."""

_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def chat_to_gemini(req: ChatCompletionRequest, *, provider: str) -> dict[str, Any]:
    """The ``generateContent`` body for ``req`` (the model and streaming are in the URL).

    Raises:
        InvalidRequest: a field Gemini cannot honour, or a malformed message, naming the param.
    """
    reject_unsupported(req, provider, "Gemini")
    system, contents = _contents(req.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    names = _tools(req, body)
    _tool_config(req, body, names)
    config = _generation_config(req)
    if config:
        body["generationConfig"] = config
    return body


def _generation_config(req: ChatCompletionRequest) -> dict[str, Any]:
    config = sampling(req, "maxOutputTokens")
    for name, key in (("presence_penalty", "presencePenalty"),
                      ("frequency_penalty", "frequencyPenalty"), ("seed", "seed")):
        value = getattr(req, name)
        if value is not None:
            config[key] = value
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.json_schema is not None and fmt.json_schema.schema:
            config["responseSchema"] = reduce_schema(fmt.json_schema.schema)
    return config


def _contents(messages: list[Message]) -> tuple[list[Part], list[dict[str, Any]]]:
    """System parts, and the user/model turns with same-role neighbours merged."""
    names: dict[str, str] = {}  # tool call id -> function name, for functionResponse
    system, turns = alternate(
        messages, assistant_role="model",
        user=lambda content, param: user_blocks(content, param, _image, "Gemini"),
        assistant=lambda msg, param: _model_parts(msg, param, names),
        tool=lambda msg, param: _function_response(msg, names, param))
    return system, [{"role": role, "parts": parts} for role, parts in turns]


def _image(url: str, param: str) -> Part:
    """A data: URL becomes ``inlineData``; an http(s) URL ``fileData`` with a guessed type."""
    if url[:5].lower() == "data:":
        media_type, data = data_url(url, param)
        return {"inlineData": {"mimeType": media_type, "data": data}}
    if url[:8].lower() == "https://" or url[:7].lower() == "http://":
        guessed = mimetypes.guess_type(url.partition("?")[0])[0] or "image/jpeg"
        return {"fileData": {"mimeType": guessed, "fileUri": url}}
    raise InvalidRequest("image_url.url must be an http(s) URL or a base64 data: URL", param=param)


def _model_parts(msg: AssistantMessage, param: str, names: dict[str, str]) -> list[Part]:
    parts: list[Part] = assistant_text(msg)
    for j, call in enumerate(msg.tool_calls or ()):
        where = f"{param}.tool_calls[{j}].function.arguments"
        args = json_arguments(call.function.arguments, where)
        names[call.id] = call.function.name
        parts.append({"functionCall": {"name": call.function.name, "args": args}})
    return parts


def _function_response(msg: ToolMessage, names: dict[str, str], param: str) -> Part:
    """A tool result becomes ``functionResponse``; Gemini wants the function's name, found
    from the assistant turn that made the call, and an object: JSON objects pass as they are,
    anything else is wrapped as ``{"content": text}``."""
    name = names.get(msg.tool_call_id)
    if name is None:
        raise InvalidRequest(f"tool_call_id {msg.tool_call_id!r} matches no earlier tool call",
                             param=f"{param}.tool_call_id")
    text = msg.content if isinstance(msg.content, str) else "".join(
        p.text for p in msg.content)
    try:
        value = msgspec.json.decode(text) if text.strip() else None
    except (ValueError, RecursionError):
        value = None
    response = value if isinstance(value, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def reduce_schema(schema: Any) -> Any:
    """A JSON Schema cut down to Gemini's ``Schema``: unknown keys dropped, ``const`` as a
    one-value ``enum``, ``type: [T, "null"]`` as ``type: T`` with ``nullable``."""
    if isinstance(schema, list):
        return [reduce_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "const":
            out["enum"] = [value]
        elif key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            if len(kinds) < len(value):
                out["nullable"] = True
            if kinds:
                out["type"] = kinds[0]
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: reduce_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = reduce_schema(value)
        elif key in SCHEMA_KEYS:
            out[key] = value
    return out


def _tools(req: ChatCompletionRequest, body: dict[str, Any]) -> set[str]:
    declarations: list[dict[str, Any]] = []
    for i, tool in enumerate(req.tools or ()):
        if tool.type != "function" or tool.function is None:
            raise InvalidRequest("only function tools are supported", param=f"tools[{i}].type")
        fn = tool.function
        out: dict[str, Any] = {"name": fn.name}
        if fn.description:
            out["description"] = fn.description
        params = reduce_schema(fn.parameters) if fn.parameters else None
        if params and params.get("properties"):
            out["parameters"] = params
        declarations.append(out)
    if declarations:
        body["tools"] = [{"functionDeclarations": declarations}]
    return {d["name"] for d in declarations}


def _tool_config(req: ChatCompletionRequest, body: dict[str, Any], names: set[str]) -> None:
    """auto → AUTO, none → NONE, required → ANY, a named function → ANY limited to it."""
    choice = req.tool_choice
    if choice is None:
        return
    if not names:
        if choice in ("auto", "none"):
            return
        raise InvalidRequest("tool_choice needs tools", param="tool_choice")
    config: dict[str, Any]
    if isinstance(choice, NamedToolChoice):
        if choice.type != "function" or choice.function.name not in names:
            raise InvalidRequest("tool_choice must name one of the function tools",
                                 param="tool_choice.function.name")
        config = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    elif choice in _MODES:
        config = {"mode": _MODES[choice]}
    else:
        raise InvalidRequest(f"unknown tool_choice {choice!r}", param="tool_choice")
    body["toolConfig"] = {"functionCallingConfig": config}
