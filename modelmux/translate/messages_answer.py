"""Translate an OpenAI chat completion (a provider's answer) into an Anthropic Message.

Reference: OpenAI "The chat completion object" and Anthropic "Messages > Create a Message"
(response: content blocks, stop_reason, usage). Also owns the finish_reason → stop_reason
table and the usage mapping that the stream translator (``messages_events``) reuses. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import msgspec

from modelmux.errors import UpstreamError

STOP_REASONS: Mapping[str, str] = MappingProxyType({
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
})
"""OpenAI ``finish_reason`` → Anthropic ``stop_reason``; anything else is ``end_turn``."""

_EMPTY_INPUT = msgspec.Raw(b"{}")


class _Function(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    id: str = ""
    function: _Function = msgspec.field(default_factory=_Function)


class _Message(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    message: _Message = msgspec.field(default_factory=_Message)
    finish_reason: str | None = None
    stop_reason: str | int | None = None  # vLLM: the stop string that ended the answer


class ChatUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []
    usage: ChatUsage | None = None


_completion = msgspec.json.Decoder(_Completion)
_encode = msgspec.json.Encoder().encode


def stop_reason(finish: str | None, matched: object, stop_sequences: list[str] | None
                ) -> tuple[str | None, str | None]:
    """(``stop_reason``, ``stop_sequence``) for an OpenAI finish; ``matched`` is the stop
    string a server named (vLLM's ``stop_reason``), so ``stop_sequence`` can be told apart."""
    if finish is None:
        return None, None
    if (finish == "stop" and isinstance(matched, str) and stop_sequences
            and matched in stop_sequences):
        return "stop_sequence", matched
    return STOP_REASONS.get(finish, "end_turn"), None


def messages_usage(usage: ChatUsage | None) -> dict[str, int]:
    """Anthropic usage from OpenAI's: ``input_tokens`` leaves out the cached prompt tokens,
    which go to ``cache_read_input_tokens`` ("Prompt caching > Tracking cache performance")."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.prompt_tokens_details or {}
    cached = details.get("cached_tokens")
    out = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
    if isinstance(cached, int) and 0 < cached <= usage.prompt_tokens:
        out["input_tokens"] -= cached
        out["cache_read_input_tokens"] = cached
    return out


def tool_input(arguments: str) -> msgspec.Raw:
    """A tool call's ``arguments`` as the tool_use block's ``input`` object (``{}`` when they
    are not a JSON object)."""
    data = arguments.encode("utf-8")
    try:
        if isinstance(msgspec.json.decode(data), dict):
            return msgspec.Raw(data)
    except (msgspec.DecodeError, RecursionError):
        pass
    return _EMPTY_INPUT


def chat_to_messages_answer(body: bytes, *, model: str, message_id: str,
                            stop_sequences: list[str] | None) -> bytes:
    """The Anthropic Message for an OpenAI completion body: the first choice's text as a text
    block, its tool calls as tool_use blocks, its finish as the stop reason.

    Raises:
        UpstreamError: the body is not a chat completion.
    """
    try:
        completion = _completion.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise UpstreamError(f"the upstream sent an unreadable chat completion: {exc}",
                            code="upstream_protocol_error") from None
    if not completion.choices:
        raise UpstreamError("the upstream sent a chat completion without choices",
                            code="upstream_protocol_error")
    choice = completion.choices[0]
    content: list[dict[str, Any]] = []
    if choice.message.content:
        content.append({"type": "text", "text": choice.message.content})
    for call in choice.message.tool_calls or ():
        content.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                        "input": tool_input(call.function.arguments)})
    reason, sequence = stop_reason(choice.finish_reason or "stop", choice.stop_reason,
                                   stop_sequences)
    return _encode({
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": reason, "stop_sequence": sequence,
        "usage": messages_usage(completion.usage),
    })
