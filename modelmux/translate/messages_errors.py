"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type": ..., "message": ...}}``.

Reference: Anthropic API "Errors > HTTP errors" (type names and their statuses) and
"Streaming Messages > Error events". Maps a ``ModelMuxError`` (or an OpenAI error payload met
mid-stream) to Anthropic's type and status; the OpenAI shape stays ``modelmux.errors``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import msgspec

from modelmux.errors import ModelMuxError

BY_STATUS: Mapping[int, str] = MappingProxyType({
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
})
"""Anthropic's error type for each status it documents."""

_BY_CODE: Mapping[str, tuple[int, str]] = MappingProxyType({
    "overloaded": (529, "overloaded_error"),
    "service_unavailable": (529, "overloaded_error"),
    "upstream_not_found": (404, "not_found_error"),
    "request_too_large": (413, "request_too_large"),
})
"""ModelMux codes whose Anthropic type is not the one their status suggests."""

_SAME_TYPES = frozenset({"invalid_request_error", "authentication_error", "permission_error",
                         "rate_limit_error", "timeout_error"})
_encode = msgspec.json.Encoder().encode


def status_and_type(error: ModelMuxError) -> tuple[int, str]:
    """The status and Anthropic error type for ``error``.

    A 4xx Anthropic does not document keeps its status as an ``invalid_request_error``; an
    upstream failure (502, or the provider refusing the gateway's own key) is a 500
    ``api_error``, and an unavailable upstream (503) a 529 ``overloaded_error``.
    """
    known = _BY_CODE.get(error.code)
    if known is not None:
        return known
    status = error.status
    kind = BY_STATUS.get(status)
    if kind is not None:
        return status, kind
    if 400 <= status < 500:
        return status, "invalid_request_error"
    if status == 503:
        return 529, "overloaded_error"
    return 500, "api_error"


def error_body(kind: str, message: str) -> bytes:
    """The JSON error body Anthropic's API sends."""
    return _encode({"type": "error", "error": {"type": kind, "message": message}})


def error_event(kind: str, message: str) -> bytes:
    """An ``event: error`` SSE frame, for a failure after the stream started."""
    return b"event: error\ndata: " + error_body(kind, message) + b"\n\n"


def type_of_payload(error: Any) -> str:
    """The Anthropic type for the ``error`` member of an OpenAI error payload (a dict)."""
    if not isinstance(error, dict):
        return "api_error"
    code, kind = error.get("code"), error.get("type")
    if isinstance(code, str) and code in _BY_CODE:
        return _BY_CODE[code][1]
    if isinstance(kind, str) and kind in _SAME_TYPES:
        return kind
    return "api_error"
