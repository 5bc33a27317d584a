"""Translate a Bedrock Converse answer into an OpenAI ChatCompletion, and Bedrock's errors.

Reference: Amazon Bedrock API Reference, "Converse" (``ConverseResponse``, ``StopReason``,
``TokenUsage``, the operation's error list) and OpenAI "The chat completion object". Also owns
what the stream translator shares: the stop-reason table, usage and the exception table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modelmux.errors import (
    InvalidRequest,
    ModelMuxError,
    ModelNotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
)
from modelmux.schemas import bedrock
from modelmux.schemas.openai_chat import (
    ChatCompletion,
    FunctionCall,
    ToolCall,
    Usage,
)
from modelmux.translate.completion import one_choice
from modelmux.translate.status_errors import error_for_status

STOP_REASONS: Mapping[str, str] = MappingProxyType({
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
})
"""Converse ``stopReason`` → OpenAI ``finish_reason``; unknown values are ``stop``."""

EXCEPTIONS: Mapping[str, tuple[type[ModelMuxError], str]] = MappingProxyType({
    "ValidationException": (InvalidRequest, "invalid_request"),
    "AccessDeniedException": (PermissionDenied, "upstream_access_denied"),
    "UnrecognizedClientException": (UpstreamAuthFailed, "upstream_auth_failed"),
    "InvalidSignatureException": (UpstreamAuthFailed, "upstream_auth_failed"),
    "ExpiredTokenException": (UpstreamAuthFailed, "upstream_auth_failed"),
    "ResourceNotFoundException": (ModelNotFound, "model_not_found"),
    "ThrottlingException": (RateLimited, "rate_limit_exceeded"),
    "ServiceQuotaExceededException": (RateLimited, "rate_limit_exceeded"),
    "ServiceUnavailableException": (ServiceUnavailable, "service_unavailable"),
    "ModelNotReadyException": (ServiceUnavailable, "service_unavailable"),
    "ModelTimeoutException": (UpstreamTimeout, "upstream_timeout"),
    "InternalServerException": (UpstreamError, "upstream_server_error"),
    "ModelErrorException": (UpstreamError, "upstream_model_error"),
    "ModelStreamErrorException": (UpstreamError, "upstream_server_error"),
})
"""Bedrock error names (``x-amzn-ErrorType``, or ``:exception-type`` in a stream with a lower
first letter) → the client's error class and code; unknown names go by HTTP status."""


def stop_reason(reason: str | None) -> str:
    return STOP_REASONS.get(reason or "end_turn", "stop")


def converse_usage(usage: bedrock.TokenUsage) -> Usage:
    """Input tokens with the cache reads and writes (OpenAI's ``prompt_tokens`` counts cached
    tokens too), the reads also as ``cached_tokens``."""
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_write_input_tokens
    details = ({"cached_tokens": usage.cache_read_input_tokens}
               if usage.cache_read_input_tokens else None)
    return Usage(prompt_tokens=prompt, completion_tokens=usage.output_tokens,
                 total_tokens=prompt + usage.output_tokens, prompt_tokens_details=details)


def error_name(raw: str) -> str:
    """``ValidationException`` from ``ValidationException:http://...``, ``aws#Name`` or
    ``validationException``."""
    name = raw.partition(":")[0].rpartition("#")[2].strip()
    return name[:1].upper() + name[1:]


def converse_error(name: str, message: str, status: int | None = None) -> ModelMuxError:
    """The client's error for a Bedrock error ``name`` (any spelling ``error_name`` reads)."""
    text = f"Bedrock {error_name(name) or 'error'}: {message or 'no message'}"
    found = EXCEPTIONS.get(error_name(name))
    if found is None:
        return error_for_status(status or 502, text)
    cls, code = found
    return cls(text, code=code)


def converse_to_chat(body: bytes, *, model: str, completion_id: str, created: int,
                     json_tool: str | None = None) -> ChatCompletion:
    """The ChatCompletion for a 200 Converse body: text blocks joined, ``toolUse`` blocks as
    ``tool_calls`` (Bedrock's ``toolUseId`` as the id, ``input`` as the arguments' JSON). In
    JSON mode the input of the ``json_tool`` call is the content, and the answer a ``stop``.

    Raises:
        UpstreamError: the body is not a ``ConverseResponse``.
    """
    try:
        answer = bedrock.response_decoder.decode(body)
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(f"Bedrock sent an unreadable answer: {exc}",
                            code="upstream_protocol_error") from exc
    texts: list[str] = []
    calls: list[ToolCall] = []
    json_text: str | None = None
    message = answer.output.message if answer.output is not None else None
    for block in message.content if message is not None else ():
        if block.tool_use is not None:
            use = block.tool_use
            if json_tool is not None and use.name == json_tool:
                json_text = bytes(use.input).decode("utf-8")
                continue
            calls.append(ToolCall(id=use.tool_use_id, function=FunctionCall(
                use.name, bytes(use.input).decode("utf-8"))))
        elif block.text:
            texts.append(block.text)
    reason = stop_reason(answer.stop_reason)
    if json_text is not None:
        texts = [json_text]  # the JSON is the whole answer; text before the call is dropped
        if not calls and reason == "tool_calls":
            reason = "stop"
    usage = converse_usage(answer.usage) if answer.usage is not None else None
    return one_choice(completion_id, created, model, texts, calls, reason, usage)
