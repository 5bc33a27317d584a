"""Translate a non-streaming Anthropic Messages response into an OpenAI ChatCompletion.

Reference: Anthropic API "Messages > Create a Message" (response: content blocks, stop_reason,
usage) and OpenAI "The chat completion object". Also owns the usage mapping the stream
translator reuses. Error bodies of non-2xx responses are the provider layer's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modelmux.errors import (
    InvalidRequest,
    ModelMuxError,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
)
from modelmux.schemas import anthropic
from modelmux.schemas.openai_chat import (
    ChatCompletion,
    Choice,
    FunctionCall,
    ResponseMessage,
    ToolCall,
    Usage,
)
from modelmux.translate.finish_reason import finish_reason

# "Errors > HTTP errors": Anthropic error type → the ModelMux error (status, OpenAI type) and code.
ANTHROPIC_ERRORS: Mapping[str, tuple[type[ModelMuxError], str]] = MappingProxyType(
    {
        "invalid_request_error": (InvalidRequest, "invalid_request"),
        "authentication_error": (UpstreamAuthFailed, "upstream_auth_failed"),
        "permission_error": (UpstreamAuthFailed, "upstream_permission_denied"),
        "billing_error": (UpstreamAuthFailed, "upstream_billing_error"),
        "not_found_error": (UpstreamError, "upstream_not_found"),
        "request_too_large": (PayloadTooLarge, "request_too_large"),
        "rate_limit_error": (RateLimited, "rate_limit_exceeded"),
        "api_error": (UpstreamError, "upstream_api_error"),
        "overloaded_error": (ServiceUnavailable, "overloaded"),
        "timeout_error": (UpstreamTimeout, "upstream_timeout"),
    }
)


def upstream_error(error_type: str, message: str) -> ModelMuxError:
    """The ModelMux error for an Anthropic ``{"type": "error", "error": {type, message}}``.

    Unknown types become a 502 ``upstream_error`` with code ``bad_gateway``.
    """
    cls, code = ANTHROPIC_ERRORS.get(error_type, (UpstreamError, "bad_gateway"))
    return cls(message or error_type, code=code)


def chat_usage(
    input_tokens: int, output_tokens: int, cache_creation: int | None, cache_read: int | None
) -> Usage:
    """OpenAI usage from Anthropic counts ("Prompt caching > Tracking cache performance").

    Anthropic's ``input_tokens`` excludes cached tokens, OpenAI's ``prompt_tokens`` includes
    them, so the three are summed; ``cached_tokens`` is the cache read, and the cache write stays
    visible as ``prompt_tokens_details.cache_creation_tokens``.
    """
    creation = cache_creation or 0
    read = cache_read or 0
    prompt = input_tokens + creation + read
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output_tokens,
        total_tokens=prompt + output_tokens,
        prompt_tokens_details={"cached_tokens": read, "cache_creation_tokens": creation},
    )


def messages_to_chat(
    body: bytes, *, model: str, completion_id: str, created: int
) -> ChatCompletion:
    """Build the ChatCompletion for an Anthropic Message body (the 200 response).

    Text blocks are concatenated into ``content``; tool_use blocks become ``tool_calls`` with the
    input passed through as the arguments string; thinking and other block types are dropped.

    Raises:
        UpstreamError: the body is not a Messages API response.
        ModelMuxError: the body is an Anthropic error (see ``upstream_error``).
    """
    try:
        message = anthropic.message_decoder.decode(body)
        if message.type != "message":
            error = anthropic.error_decoder.decode(body).error
            raise upstream_error(error.type, error.message)
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                arguments = bytes(block.input).decode("utf-8")
                calls.append(ToolCall(id=block.id, function=FunctionCall(block.name, arguments)))
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(f"the upstream sent an unreadable Messages response: {exc}") from exc
    content = "".join(texts) if texts or not calls else None
    usage = message.usage
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[
            Choice(
                index=0,
                message=ResponseMessage(content=content, tool_calls=calls or None),
                finish_reason=finish_reason(message.stop_reason),
            )
        ],
        usage=chat_usage(
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_creation_input_tokens,
            usage.cache_read_input_tokens,
        ),
    )
