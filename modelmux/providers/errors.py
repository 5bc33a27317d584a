"""What an upstream error becomes for the client: the status table, as data, and its readers.

``STATUS_TABLE`` maps an upstream HTTP status to the ModelMux error the client sees (documented
in docs/providers.md); ``upstream_message`` finds the human message in OpenAI-, Anthropic- or
Google-shaped error bodies. Which errors are worth a retry is ``upstream.retry``'s call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import msgspec

from modelmux.errors import (
    Headers,
    InvalidRequest,
    ModelMuxError,
    ModelNotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
)


_MAX_TEXT = 300


@dataclass(frozen=True, slots=True)
class StatusRule:
    """One row of the table: the error class and code, and how the message is worded.

    ``says`` is a template over ``provider``, ``status`` and ``message`` (the upstream's own
    words); ``keep_retry_after`` passes the upstream ``retry-after`` header to the client.
    """

    error: type[ModelMuxError]
    code: str
    says: str
    keep_retry_after: bool = False


_CREDENTIALS = (
    "provider {provider!r} refused ModelMux's own credentials (upstream HTTP {status}); "
    "check the api key or service account configured for it, not yours: {message}"
)

STATUS_TABLE: Mapping[int, StatusRule] = MappingProxyType(
    {
        400: StatusRule(InvalidRequest, "invalid_request", "{message}"),
        401: StatusRule(UpstreamAuthFailed, "upstream_auth_failed", _CREDENTIALS),
        403: StatusRule(UpstreamAuthFailed, "upstream_auth_failed", _CREDENTIALS),
        404: StatusRule(
            ModelNotFound,
            "model_not_found",
            "provider {provider!r} does not know this model (upstream HTTP 404): {message}",
        ),
        413: StatusRule(PayloadTooLarge, "request_too_large", "{message}"),
        422: StatusRule(InvalidRequest, "invalid_request", "{message}"),
        429: StatusRule(
            RateLimited,
            "rate_limit_exceeded",
            "provider {provider!r} is rate limiting ModelMux: {message}",
            keep_retry_after=True,
        ),
        529: StatusRule(
            ServiceUnavailable,
            "overloaded",
            "provider {provider!r} is overloaded: {message}",
            keep_retry_after=True,
        ),
    }
)
"""Upstream status → client error; statuses not listed fall back to the rules below."""

SERVER_ERROR = StatusRule(
    UpstreamError,
    "upstream_server_error",
    "provider {provider!r} failed (upstream HTTP {status}): {message}",
)
"""Any other 5xx: 502."""

OTHER_STATUS = StatusRule(
    UpstreamError, "upstream_unexpected_status",
    "provider {provider!r} answered HTTP {status}: {message}",
)
"""Any other 4xx, or a status that is not an error and not a success: 502."""

_OPENAI_TYPES: Mapping[str, type[ModelMuxError]] = MappingProxyType(
    {
        "invalid_request_error": InvalidRequest,
        "rate_limit_error": RateLimited,
        "rate_limit_exceeded": RateLimited,
        "authentication_error": UpstreamAuthFailed,
        "permission_error": UpstreamAuthFailed,
        "timeout_error": UpstreamTimeout,
        "overloaded_error": ServiceUnavailable,
    }
)
"""OpenAI error ``type`` found in a streamed error payload → the error it becomes."""

_TGI_TYPES: Mapping[str, type[ModelMuxError]] = MappingProxyType(
    {"validation": InvalidRequest, "overloaded": ServiceUnavailable}
)
"""Hugging Face TGI's ``error_type`` → the error it becomes (others: an upstream error)."""



def upstream_message(body: bytes) -> str:
    """The upstream's human-readable error message from an error body of any known shape.

    Reads ``{"error": {"message"}}`` (OpenAI, Anthropic, Google), ``{"message"}`` (older
    vLLM), ``{"detail"}`` (FastAPI), a one-element JSON list of those (Google), else the start
    of the body as text.
    """
    try:
        doc: Any = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        doc = None
    if isinstance(doc, list) and doc:
        doc = doc[0]
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            value = doc.get(key)
            if isinstance(value, str) and value:
                return value
            if value:
                return msgspec.json.encode(value).decode()[:_MAX_TEXT]
    text = body.decode("utf-8", "replace").strip()
    return text[:_MAX_TEXT] or "(empty body)"


def _param(body: bytes) -> str | None:
    try:
        doc = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    return param if isinstance(param, str) else None


def rule_for(status: int) -> StatusRule:
    """The table row for an upstream status."""
    rule = STATUS_TABLE.get(status)
    if rule is not None:
        return rule
    return SERVER_ERROR if 500 <= status <= 599 else OTHER_STATUS


def error_from_response(provider: str, status: int, headers: Headers, body: bytes) -> ModelMuxError:
    """The client-facing error for a non-2xx upstream response, per ``STATUS_TABLE``."""
    rule = rule_for(status)
    message = rule.says.format(provider=provider, status=status, message=upstream_message(body))
    kept: Headers = []
    if rule.keep_retry_after:
        kept = [(name, value) for name, value in headers if name == b"retry-after"]
    param = _param(body) if rule.error is InvalidRequest else None
    return rule.error(message, code=rule.code, param=param, headers=kept)


def error_from_payload(provider: str, payload: bytes) -> ModelMuxError | None:
    """The error carried by a streamed OpenAI-format payload, or None if it is a normal chunk.

    Understands ``{"error": {"message", "type", "code"}}``, older vLLM's
    ``{"object": "error", "message", "type", "code": <status>}`` and Hugging Face TGI's
    ``{"error": "<text>", "error_type": "validation" | "overloaded" | ...}``.
    """
    try:
        doc = msgspec.json.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    error = doc.get("error")
    if isinstance(error, str) and error:  # Hugging Face TGI: {"error": "...", "error_type": ...}
        kind = _TGI_TYPES.get(str(doc.get("error_type")), UpstreamError)
        return kind(error if kind is not UpstreamError else f"provider {provider!r}: {error}")
    if isinstance(error, dict):
        fields = error
    elif doc.get("object") == "error":
        fields = doc
    else:
        return None
    message = fields.get("message")
    text = message if isinstance(message, str) and message else "upstream stream error"
    code = fields.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        return error_from_response(provider, code, [], payload)
    cls = _OPENAI_TYPES.get(str(fields.get("type")), UpstreamError)
    if cls is UpstreamError:
        text = f"provider {provider!r}: {text}"
    return cls(text, code=code if isinstance(code, str) and code else None)
