"""Translate a Cohere v2 chat answer into an OpenAI ChatCompletion.

Reference: Cohere API "Chat" (v2) response (``message.content``, ``tool_plan``,
``tool_calls``, ``finish_reason``, ``usage``) and OpenAI "The chat completion object". Also
owns the finish-reason table and the usage mapping the stream translator shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modelmux.errors import UpstreamError
from modelmux.schemas import cohere
from modelmux.schemas.openai_chat import (
    ChatCompletion,
    FunctionCall,
    ToolCall,
    Usage,
)
from modelmux.translate.completion import one_choice

COHERE_FINISH_REASONS: Mapping[str, str] = MappingProxyType({
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR_LIMIT": "length",
    "ERROR_TOXIC": "content_filter",
})
"""Cohere ``finish_reason`` → OpenAI ``finish_reason``; unknown values are ``stop``.
``ERROR`` is not a finish: it becomes an error (502, or an error event mid-stream)."""


def cohere_finish_reason(reason: str | None) -> str:
    return COHERE_FINISH_REASONS.get(reason or "COMPLETE", "stop")


def cohere_usage(usage: cohere.Usage) -> Usage:
    """``billed_units`` (what Cohere charges) when given, else ``tokens``."""
    counts = usage.billed_units or usage.tokens or cohere.Tokens()
    prompt, completion = int(counts.input_tokens), int(counts.output_tokens)
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion)


def cohere_failed(message: str | None) -> UpstreamError:
    """A generation Cohere ended with ``finish_reason: ERROR``."""
    return UpstreamError(f"Cohere: {message or 'the generation failed'}",
                         code="upstream_generation_error")


def cohere_to_chat(body: bytes, *, model: str, completion_id: str, created: int) -> ChatCompletion:
    """The ChatCompletion for a 200 ``/v2/chat`` body: text content joined (the ``tool_plan``
    when there is none), tool calls as they are.

    Raises:
        UpstreamError: the body is unreadable, or the generation ended with ``ERROR``.
    """
    try:
        answer = cohere.response_decoder.decode(body)
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(f"Cohere sent an unreadable answer: {exc}",
                            code="upstream_protocol_error") from exc
    if answer.finish_reason == "ERROR":
        raise cohere_failed(None)
    message = answer.message or cohere.Message()
    text = "".join(c.text or "" for c in message.content if c.type == "text")
    calls = [ToolCall(id=c.id or f"call_{i}", function=FunctionCall(
                 c.function.name or "", c.function.arguments or "{}"))
             for i, c in enumerate(message.tool_calls) if c.function is not None]
    if not text and message.tool_plan:
        text = message.tool_plan
    usage = cohere_usage(answer.usage) if answer.usage is not None else None
    return one_choice(completion_id, created, model, [text] if text else [], calls,
                      cohere_finish_reason(answer.finish_reason), usage)
