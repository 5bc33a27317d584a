"""Translate a Gemini ``generateContent`` answer into an OpenAI ChatCompletion.

Reference: Gemini API "Generating content" (``GenerateContentResponse``, ``FinishReason``,
``UsageMetadata``, ``PromptFeedback``) and OpenAI "The chat completion object". Also owns
what the stream translator shares: the finish-reason table, usage, tool-call ids and errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.schemas import gemini
from modelmux.schemas.openai_chat import (
    ChatCompletion,
    FunctionCall,
    ToolCall,
    Usage,
)
from modelmux.translate.completion import one_choice
from modelmux.translate.status_errors import error_for_status

GEMINI_FINISH_REASONS: Mapping[str, str] = MappingProxyType({
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "stop",
    "OTHER": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
})
"""Gemini ``finishReason`` → OpenAI ``finish_reason``; unknown values are ``stop``. A
candidate that called functions finishes with ``STOP`` and becomes ``tool_calls``."""


def gemini_finish_reason(reason: str | None, called_tools: bool) -> str:
    if called_tools and reason in (None, "STOP"):
        return "tool_calls"
    return GEMINI_FINISH_REASONS.get(reason or "STOP", "stop")


def gemini_usage(meta: gemini.UsageMetadata) -> Usage:
    """``promptTokenCount`` (cached tokens included, as in OpenAI's ``prompt_tokens``);
    completion = candidates + thoughts, the thoughts also as ``reasoning_tokens``."""
    completion = meta.candidates_token_count + meta.thoughts_token_count
    return Usage(
        prompt_tokens=meta.prompt_token_count,
        completion_tokens=completion,
        total_tokens=meta.prompt_token_count + completion,
        prompt_tokens_details={"cached_tokens": meta.cached_content_token_count},
        completion_tokens_details={"reasoning_tokens": meta.thoughts_token_count},
    )


def tool_call_id(completion_id: str, index: int, given: str | None) -> str:
    """Gemini's own call id when it sends one, else one derived from the completion id and
    the call's index: the same in a streamed and a whole answer, unique per response."""
    if given:
        return given
    return f"call_{completion_id.removeprefix('chatcmpl-')}_{index}"


def gemini_error(error: gemini.Error) -> ModelMuxError:
    """The error a ``{"error": {code, message, status}}`` body or stream event stands for."""
    text = error.message or error.status or "upstream error"
    return error_for_status(error.code, f"Gemini: {text}")


def gemini_to_chat(body: bytes, *, model: str, completion_id: str, created: int) -> ChatCompletion:
    """The ChatCompletion for a 200 ``generateContent`` body.

    Text parts of the first candidate are joined (thought parts dropped); ``functionCall``
    parts become ``tool_calls`` with ``tool_call_id`` ids; a prompt blocked by
    ``promptFeedback`` is an empty ``content_filter`` answer.

    Raises:
        UpstreamError: the body is not a ``GenerateContentResponse``.
        ModelMuxError: the body carries an ``error``.
    """
    try:
        answer = gemini.response_decoder.decode(body)
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(f"Gemini sent an unreadable answer: {exc}",
                            code="upstream_protocol_error") from exc
    if answer.error is not None:
        raise gemini_error(answer.error)
    texts: list[str] = []
    calls: list[ToolCall] = []
    reason: str | None = None
    if answer.candidates:
        candidate = answer.candidates[0]
        reason = candidate.finish_reason
        for part in candidate.content.parts if candidate.content is not None else ():
            if part.function_call is not None:
                call = part.function_call
                arguments = bytes(call.args).decode("utf-8")
                calls.append(ToolCall(id=tool_call_id(completion_id, len(calls), call.id),
                                      function=FunctionCall(call.name, arguments)))
            elif part.text and not part.thought:
                texts.append(part.text)
        finish = gemini_finish_reason(reason, bool(calls))
    else:
        blocked = answer.prompt_feedback is not None and answer.prompt_feedback.block_reason
        finish = "content_filter" if blocked else "stop"
    meta = answer.usage_metadata
    usage = gemini_usage(meta) if meta is not None else None
    return one_choice(completion_id, created, model, texts, calls, finish, usage)
