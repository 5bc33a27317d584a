"""Translate an OpenAI chat completion request into an Anthropic Messages request body.

Reference: Anthropic API "Messages > Create a Message" (request body, content blocks, tools) and
OpenAI "Chat > Create chat completion". Pure: a decoded request in, a plain dict out. What each
OpenAI field becomes (mapped, dropped, or rejected with 400) is tabled in docs/translation.md.
"""

from __future__ import annotations

from typing import Any

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import (
    AssistantMessage,
    ChatCompletionRequest,
    FilePart,
    ImagePart,
    Message,
    NamedToolChoice,
    RefusalPart,
    TextPart,
    ToolCall,
    ToolMessage,
)
from modelmux.translate.turns import Block, alternate, json_arguments


DEFAULT_MAX_TOKENS = 4096
LEADING_USER_TEXT = "(start of conversation)"
"""Text of the user turn put before a conversation that opens with an assistant turn."""

# "Vision": the image media types the Messages API accepts for a base64 source.
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# "PDF support": a base64 document source takes this media type.
DOCUMENT_MEDIA_TYPES = frozenset({"application/pdf"})
_TOOL_CHOICE_MODES = {"auto": "auto", "none": "none", "required": "any"}


def chat_to_messages(
    req: ChatCompletionRequest, *, model: str | None, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict[str, Any]:
    """Build the Anthropic Messages body for ``req``, ready for ``msgspec.json.encode``.

    ``model`` is left out when None (the Vertex profile names the model in the URL).

    Raises:
        InvalidRequest: a field Claude cannot honour, or a malformed message, naming the param.
    """
    _reject_unsupported(req)
    system, turns = _conversation(req.messages)
    body: dict[str, Any] = {}
    if model is not None:
        body["model"] = model
    body["max_tokens"] = _max_tokens(req, default_max_tokens)
    if system:
        body["system"] = system[0]["text"] if len(system) == 1 else system
    body["messages"] = turns
    tool_names = _tools(req, body)
    _tool_choice(req, body, tool_names)
    _sampling(req, body)
    if req.stream:
        body["stream"] = True
    return body


def _reject_unsupported(req: ChatCompletionRequest) -> None:
    """Refuse each OpenAI feature whose silent absence would change the answer.

    Raises:
        InvalidRequest: naming the field.
    """
    if req.n is not None and req.n != 1:
        raise InvalidRequest("n must be 1: Claude returns a single choice per request", param="n")
    if req.logprobs:
        raise InvalidRequest("logprobs are not available from Claude models", param="logprobs")
    if req.top_logprobs:
        raise InvalidRequest("logprobs are not available from Claude models", param="top_logprobs")
    if req.logit_bias:
        raise InvalidRequest(
            "logit_bias is not supported: token ids do not carry over to Claude", param="logit_bias"
        )
    if req.response_format is not None and req.response_format.type != "text":
        raise InvalidRequest(
            f"response_format {req.response_format.type!r} is not supported for Claude models; "
            "describe the JSON you want in the prompt, or define a tool with that schema",
            param="response_format",
        )
    if req.audio is not None or (req.modalities and set(req.modalities) - {"text"}):
        raise InvalidRequest("Claude models produce text only", param="modalities")
    if req.functions is not None or req.function_call is not None:
        param = "functions" if req.functions is not None else "function_call"
        raise InvalidRequest("the legacy functions API is not supported; use tools", param=param)
    if req.web_search_options is not None:
        raise InvalidRequest("web search is not supported", param="web_search_options")


def _max_tokens(req: ChatCompletionRequest, default: int) -> int:
    for name, value in (
        ("max_completion_tokens", req.max_completion_tokens),
        ("max_tokens", req.max_tokens),
    ):
        if value is not None:
            if value < 1:
                raise InvalidRequest(f"{name} must be at least 1", param=name)
            return value
    return default


def _sampling(req: ChatCompletionRequest, body: dict[str, Any]) -> None:
    if req.stop is not None:
        stops = [req.stop] if isinstance(req.stop, str) else req.stop
        stops = [s for s in stops if s]
        if stops:
            body["stop_sequences"] = stops
    if req.temperature is not None:
        if not 0.0 <= req.temperature <= 1.0:
            raise InvalidRequest(
                "temperature must be between 0 and 1 for Claude models", param="temperature"
            )
        body["temperature"] = req.temperature
    if req.top_p is not None:
        if not 0.0 <= req.top_p <= 1.0:
            raise InvalidRequest("top_p must be between 0 and 1", param="top_p")
        body["top_p"] = req.top_p
    if req.user:
        body["metadata"] = {"user_id": req.user}


def _conversation(messages: list[Message]) -> tuple[list[Block], list[Block]]:
    """System blocks and the alternating user/assistant turns, starting with a user turn.

    Raises:
        InvalidRequest: a malformed message, or no user or assistant content at all.
    """
    system, turns = alternate(messages, assistant_role="assistant", system_blocks=_text_blocks,
                              user=_user_blocks, assistant=_assistant_blocks,
                              tool=lambda msg, _param: _tool_result(msg))
    if turns[0][0] == "assistant":
        turns.insert(0, ("user", [{"type": "text", "text": LEADING_USER_TEXT}]))
    _trim_final_assistant(turns[-1])
    return system, [
        {"role": role, "content": _tool_results_first(blocks) if role == "user" else blocks}
        for role, blocks in turns
    ]


def _tool_results_first(blocks: list[Block]) -> list[Block]:
    """Put tool_result blocks before other content, as "How to implement tool use" requires."""
    results = [b for b in blocks if b["type"] == "tool_result"]
    if not results or len(results) == len(blocks):
        return blocks
    return results + [b for b in blocks if b["type"] != "tool_result"]


def _trim_final_assistant(turn: tuple[str, list[Block]]) -> None:
    """A final (prefill) assistant turn may not end in whitespace; strip it."""
    role, blocks = turn
    last = blocks[-1]
    if role == "assistant" and last["type"] == "text":
        last["text"] = last["text"].rstrip()


def _text(text: str) -> list[Block]:
    return [{"type": "text", "text": text}] if text.strip() else []


def _text_blocks(content: str | list[TextPart]) -> list[Block]:
    if isinstance(content, str):
        return _text(content)
    return [block for part in content for block in _text(part.text)]


def _user_blocks(content: str | list[Any], param: str) -> list[Block]:
    if isinstance(content, str):
        return _text(content)
    blocks: list[Block] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            blocks.extend(_text(part.text))
        elif isinstance(part, ImagePart):
            blocks.append(_image(part.image_url.url, f"{param}[{j}].image_url.url"))
        elif isinstance(part, FilePart):
            blocks.append(_document(part, f"{param}[{j}].file"))
        else:
            raise InvalidRequest("audio input is not supported by Claude", param=f"{param}[{j}]")
    return blocks


def data_url(url: str, param: str) -> tuple[str, str]:
    """Split ``data:<media type>;base64,<data>``.

    Raises:
        InvalidRequest: not a base64 data URL.
    """
    head, sep, data = url.partition(",")
    media_type, _, encoding = head[len("data:") :].partition(";")
    if not sep or encoding.lower() != "base64" or not data:
        raise InvalidRequest(
            "data URLs must look like data:<media type>;base64,<data>", param=param
        )
    return media_type.lower(), data


def _image(url: str, param: str) -> Block:
    """A data: URL becomes a base64 image source, an http(s) URL a url source ("Vision").

    Raises:
        InvalidRequest: any other URL scheme, or an image type Claude does not read.
    """
    if url[:5].lower() == "data:":
        media_type, data = data_url(url, param)
        if media_type not in IMAGE_MEDIA_TYPES:
            allowed = ", ".join(sorted(IMAGE_MEDIA_TYPES))
            raise InvalidRequest(f"image type {media_type!r} is not one of {allowed}", param=param)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url[:8].lower() == "https://" or url[:7].lower() == "http://":
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest("image_url.url must be an http(s) URL or a base64 data: URL", param=param)


def _document(part: FilePart, param: str) -> Block:
    """A PDF given inline as a data: URL becomes a base64 document block ("PDF support").

    Raises:
        InvalidRequest: a file id (no Files API behind this gateway) or a non-PDF file.
    """
    if part.file.file_data is None:
        raise InvalidRequest("files must be sent inline as file_data", param=f"{param}.file_id")
    media_type, data = data_url(part.file.file_data, f"{param}.file_data")
    if media_type not in DOCUMENT_MEDIA_TYPES:
        raise InvalidRequest("only PDF files are supported", param=f"{param}.file_data")
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def _assistant_blocks(msg: AssistantMessage, param: str) -> list[Block]:
    if msg.function_call is not None:
        raise InvalidRequest("function_call is not supported; use tool_calls", param=param)
    blocks: list[Block] = []
    if isinstance(msg.content, str):
        blocks.extend(_text(msg.content))
    elif msg.content is not None:
        for part in msg.content:
            blocks.extend(_text(part.text if isinstance(part, TextPart) else part.refusal))
    if msg.refusal and not any(isinstance(p, RefusalPart) for p in msg.content or ()):
        blocks.extend(_text(msg.refusal))
    for j, call in enumerate(msg.tool_calls or ()):
        blocks.append(_tool_use(call, f"{param}.tool_calls[{j}]"))
    return blocks


def _tool_use(call: ToolCall, param: str) -> Block:
    """An assistant tool call becomes a tool_use block ("How to implement tool use").

    Raises:
        InvalidRequest: not a function call, or arguments that are not a JSON object.
    """
    if call.type != "function":
        raise InvalidRequest(
            f"tool call type {call.type!r} is not supported", param=f"{param}.type"
        )
    tool_input = json_arguments(call.function.arguments, f"{param}.function.arguments")
    return {"type": "tool_use", "id": call.id, "name": call.function.name, "input": tool_input}


def _tool_result(msg: ToolMessage) -> Block:
    """A role ``tool`` message becomes a tool_result block of the next user turn."""
    block: Block = {"type": "tool_result", "tool_use_id": msg.tool_call_id}
    if isinstance(msg.content, str):
        if msg.content.strip():
            block["content"] = msg.content
    else:
        parts = _text_blocks(msg.content)
        if parts:
            block["content"] = parts
    return block


def _tools(req: ChatCompletionRequest, body: dict[str, Any]) -> set[str]:
    """Function tools → name/description/input_schema ("Tool use > Specifying client tools").

    Raises:
        InvalidRequest: a tool that is not a function tool.
    """
    names: set[str] = set()
    tools: list[Block] = []
    for i, tool in enumerate(req.tools or ()):
        if tool.type != "function" or tool.function is None:
            raise InvalidRequest("only function tools are supported", param=f"tools[{i}].type")
        fn = tool.function
        out: Block = {"name": fn.name}
        if fn.description:
            out["description"] = fn.description
        out["input_schema"] = fn.parameters or {"type": "object", "properties": {}}
        tools.append(out)
        names.add(fn.name)
    if tools:
        body["tools"] = tools
    return names


def _tool_choice(req: ChatCompletionRequest, body: dict[str, Any], names: set[str]) -> None:
    """auto, none, required → any, a named function → tool ("Tool use > Forcing tool use").

    Raises:
        InvalidRequest: an unknown mode, a name not among the tools, or a choice without tools.
    """
    choice = req.tool_choice
    if not names:
        if choice is None or choice in ("auto", "none"):
            return
        raise InvalidRequest("tool_choice needs tools", param="tool_choice")
    out: Block
    if choice is None:
        out = {"type": "auto"}
    elif isinstance(choice, NamedToolChoice):
        if choice.type != "function" or choice.function.name not in names:
            raise InvalidRequest(
                "tool_choice must name one of the function tools", param="tool_choice.function.name"
            )
        out = {"type": "tool", "name": choice.function.name}
    elif choice in _TOOL_CHOICE_MODES:
        out = {"type": _TOOL_CHOICE_MODES[choice]}
    else:
        raise InvalidRequest(f"unknown tool_choice {choice!r}", param="tool_choice")
    if req.parallel_tool_calls is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    if choice is not None or "disable_parallel_tool_use" in out:
        body["tool_choice"] = out
