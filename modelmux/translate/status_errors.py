"""The ModelMux error for an HTTP status an upstream put inside a body or stream event.

Gemini streams ``{"error": {"code": 429, ...}}`` after a 200 head; this gives such an error
the class (status, OpenAI type) a non-2xx answer of that status would get from
``providers.errors``, without the provider layer. Which errors are retried is
``upstream.retry``'s call.
"""

from __future__ import annotations

from modelmux.errors import (
    InvalidRequest,
    ModelMuxError,
    ModelNotFound,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
)


def error_for_status(status: int, message: str) -> ModelMuxError:
    """400/422 → 400, 401/403 → upstream auth, 404 → model not found, 429 → rate limited,
    503 → unavailable, 504 → timeout, anything else → 502."""
    if status in (400, 422):
        return InvalidRequest(message, code="invalid_request")
    if status in (401, 403):
        return UpstreamAuthFailed(message)
    if status == 404:
        return ModelNotFound(message, code="model_not_found")
    if status == 429:
        return RateLimited(message)
    if status == 503:
        return ServiceUnavailable(message)
    if status == 504:
        return UpstreamTimeout(message)
    return UpstreamError(message, code="upstream_server_error" if status >= 500 else None)
