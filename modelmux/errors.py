"""The one exception tree of ModelMux and the OpenAI error body it renders to.

Every error a client can see is a ``ModelMuxError`` subclass that carries its HTTP status and
OpenAI ``type``/``code``; foreign exceptions are translated into these at the layer edge. This
module owns the error shape, and the ``Headers`` alias errors carry and every layer uses, ``{"error": {"message", "type", "code", "param"}}`` and nothing else.
"""

from __future__ import annotations

import msgspec

Headers = list[tuple[bytes, bytes]]
"""HTTP header fields as they travel through ModelMux: (name, value) byte pairs, in order."""

_encode = msgspec.json.Encoder().encode


class ModelMuxError(Exception):
    """Base of every client-visible error: status, OpenAI type and code travel with it."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"
    retryable: bool = False
    """Set on an upstream failure that another try at the same deployment may cure."""
    retry_after: float | None = None
    """Seconds the upstream asked to wait before that try, when it named a wait."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or []

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }

    def body(self) -> bytes:
        """The JSON error body, as OpenAI's API renders it."""
        return _encode(self.to_dict())


class InvalidRequest(ModelMuxError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(ModelMuxError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ModelMuxError):
    """Authenticated, but not allowed: a wrong admin key."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(ModelMuxError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(ModelMuxError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeout(ModelMuxError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class Conflict(ModelMuxError):
    """The change clashes with what exists: a taken name, a record still in use."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(ModelMuxError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(ModelMuxError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class HeadersTooLarge(ModelMuxError):
    status = 431
    type = "invalid_request_error"
    code = "request_header_fields_too_large"


class RateLimited(ModelMuxError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(ModelMuxError):
    """A key's, user's, team's or the global budget is spent for its period."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class InternalError(ModelMuxError):
    status = 500
    type = "server_error"
    code = "internal_error"


class PluginFailed(InternalError):
    """A plugin (a middleware stage or a provider type) raised something other than a
    ``ModelMuxError``: the client gets a 500 that names it, and the server keeps serving."""

    code = "plugin_error"

    @classmethod
    def naming(cls, plugin: str, exc: BaseException) -> PluginFailed:
        """The error for ``exc`` raised by ``plugin`` (its type only: messages may hold data)."""
        return cls(f"The {plugin!r} plugin failed: {type(exc).__name__}.")

    @classmethod
    def returning(cls, plugin: str, what: str, value: object, expected: str) -> PluginFailed:
        """The error for ``plugin`` whose ``what`` gave ``value`` where ``expected`` was due
        (its type only, as in ``naming``)."""
        return cls(f"The {plugin!r} plugin failed: {what} gave {type(value).__name__}, "
                   f"not {expected}.")


class UpstreamError(ModelMuxError):
    """The provider answered with an error or broke the protocol."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class UpstreamAuthFailed(UpstreamError):
    """The provider refused ModelMux's own credentials (not the client's)."""

    code = "upstream_auth_failed"


class ServiceUnavailable(ModelMuxError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class UpstreamTimeout(ModelMuxError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


def error_body(message: str, *, status: int, type: str, code: str, param: str | None = None) -> bytes:
    """Render an ad-hoc OpenAI error body (for paths that have no exception at hand)."""
    return _encode({"error": {"message": message, "type": type, "code": code, "param": param}})
