"""OpenAI chat messages as alternating vendor turns: the walk Gemini, Bedrock Converse and
Claude's Messages share.

They take system text apart from the turns, want user and assistant turns to alternate
(same-role neighbours are merged, so tool results after a tool call join one user turn), and
write text as ``{"text": ...}`` (Claude's translator passes its own ``system_blocks``). Each
translator supplies what differs: its assistant role name, how an assistant message, a tool
result and an image become its blocks. Tool-call arguments are read here too, for every
translator that sends them as an object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import (
    AssistantMessage,
    DeveloperMessage,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

Block = dict[str, Any]


def text_blocks(content: str | list[TextPart]) -> list[Block]:
    """A message's text as ``{"text": ...}`` blocks, empty texts left out."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    return [{"text": part.text} for part in content if part.text]


def assistant_text(msg: AssistantMessage) -> list[Block]:
    """An assistant message's text as ``{"text": ...}`` blocks (refusal parts left out)."""
    if isinstance(msg.content, str):
        return text_blocks(msg.content)
    if msg.content is None:
        return []
    return [{"text": p.text} for p in msg.content if isinstance(p, TextPart) and p.text]


def json_arguments(text: str, param: str) -> dict[str, Any]:
    """A tool call's ``function.arguments`` as the object vendors want; blank text is ``{}``.

    Raises:
        InvalidRequest: arguments that are not a JSON object.
    """
    if not text.strip():
        return {}
    try:
        value = msgspec.json.decode(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest("function.arguments must be a JSON object", param=param)
    return value


def user_blocks(content: str | list[Any], param: str, image: Callable[[str, str], Block],
                vendor: str) -> list[Block]:
    """A user message's text and image parts; ``image(url, param)`` makes an image block.

    Raises:
        InvalidRequest: a part that is neither text nor image (``vendor`` names who refuses).
    """
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[Block] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(image(part.image_url.url, f"{param}[{j}].image_url.url"))
        else:
            raise InvalidRequest(f"only text and image parts are supported for {vendor}",
                                 param=f"{param}[{j}]")
    return blocks


def alternate(messages: list[Message], *, assistant_role: str,
              user: Callable[[Any, str], list[Block]],
              assistant: Callable[[AssistantMessage, str], list[Block]],
              tool: Callable[[ToolMessage, str], Block],
              system_blocks: Callable[[Any], list[Block]] = text_blocks,
              ) -> tuple[list[Block], list[tuple[str, list[Block]]]]:
    """System text blocks, and (role, blocks) turns with same-role neighbours merged.

    Raises:
        InvalidRequest: a ``function`` message, or no user or assistant content at all.
    """
    system: list[Block] = []
    turns: list[tuple[str, list[Block]]] = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if isinstance(msg, (SystemMessage, DeveloperMessage)):
            system.extend(system_blocks(msg.content))
            continue
        if isinstance(msg, UserMessage):
            role, blocks = "user", user(msg.content, f"{param}.content")
        elif isinstance(msg, AssistantMessage):
            role, blocks = assistant_role, assistant(msg, param)
        elif isinstance(msg, ToolMessage):
            role, blocks = "user", [tool(msg, param)]
        else:
            raise InvalidRequest("role 'function' is not supported; use tools", param=param)
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    if not turns:
        raise InvalidRequest("messages must include user or assistant content", param="messages")
    return system, turns
