"""The upstream error table: statuses, messages from every body shape, kept headers."""

from __future__ import annotations

import json

import pytest

from modelmux.errors import (
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
)
from modelmux.providers.errors import (
    STATUS_TABLE,
    error_from_payload,
    error_from_response,
    upstream_message,
)
from modelmux.upstream.errors import UpstreamClosed
from modelmux.upstream.retry import is_retryable_error

OPENAI = json.dumps({"error": {"message": "bad value", "type": "invalid_request_error",
                               "param": "temperature", "code": None}}).encode()
ANTHROPIC = json.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                   "message": "Overloaded"}}).encode()


@pytest.mark.parametrize(
    ("status", "cls", "client_status", "code"),
    [
        (400, InvalidRequest, 400, "invalid_request"),
        (401, UpstreamAuthFailed, 502, "upstream_auth_failed"),
        (403, UpstreamAuthFailed, 502, "upstream_auth_failed"),
        (404, ModelNotFound, 404, "model_not_found"),
        (413, PayloadTooLarge, 413, "request_too_large"),
        (422, InvalidRequest, 400, "invalid_request"),
        (429, RateLimited, 429, "rate_limit_exceeded"),
        (529, ServiceUnavailable, 503, "overloaded"),
        (500, UpstreamError, 502, "upstream_server_error"),
        (503, UpstreamError, 502, "upstream_server_error"),
        (418, UpstreamError, 502, "upstream_unexpected_status"),
        (302, UpstreamError, 502, "upstream_unexpected_status"),
    ],
)
def test_status_table(status: int, cls: type, client_status: int, code: str) -> None:
    error = error_from_response("p", status, [(b"retry-after", b"5")], OPENAI)
    assert type(error) is cls and error.status == client_status and error.code == code
    assert "bad value" in error.message
    kept = status in (429, 529)
    assert error.headers == ([(b"retry-after", b"5")] if kept else [])
    assert (STATUS_TABLE.get(status) is not None) == (status in (400, 401, 403, 404, 413, 422,
                                                                 429, 529))


def test_400_keeps_the_upstream_message_and_param() -> None:
    error = error_from_response("p", 400, [], OPENAI)
    assert error.message == "bad value" and error.param == "temperature"


def test_401_blames_the_proxy_credentials() -> None:
    error = error_from_response("vertex", 401, [], b"")
    assert error.type == "upstream_error"
    assert "refused ModelMux's own credentials" in error.message and "vertex" in error.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (OPENAI, "bad value"),
        (ANTHROPIC, "Overloaded"),
        ((b'[{"error": {"code": 401, "message": "Request had invalid credentials.", '
         b'"status": "UNAUTHENTICATED"}}]'), "Request had invalid credentials."),
        (b'{"object": "error", "message": "too long", "type": "BadRequestError", "code": 400}',
         "too long"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b'{"detail": [{"loc": ["body", "model"], "msg": "field required"}]}', "field required"),
        (b'{"error": "invalid_grant"}', "invalid_grant"),
        (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"),
        (b"", "(empty body)"),
        (b"x" * 1000, "x" * 300),
    ],
)
def test_upstream_message_from_every_shape(body: bytes, message: str) -> None:
    assert message in upstream_message(body)


def test_error_from_payload() -> None:
    assert error_from_payload("p", b'{"id": "x", "choices": []}') is None
    assert error_from_payload("p", b"not json") is None
    error = error_from_payload("p", b'{"error": {"message": "m", "type": "weird", "code": "c"}}')
    assert type(error) is UpstreamError and error.code == "c" and error.message == "provider 'p': m"
    assert isinstance(error_from_payload("p", b'{"object": "error", "message": "m", "code": 429}'),
                      RateLimited)


def test_retryable_errors() -> None:
    assert is_retryable_error(RateLimited("x"))
    assert is_retryable_error(ServiceUnavailable("x"))
    assert is_retryable_error(UpstreamClosed("x"))
    assert is_retryable_error(error_from_response("p", 500, [], b""))
    assert not is_retryable_error(error_from_response("p", 400, [], b""))
    assert not is_retryable_error(UpstreamAuthFailed("x"))
    assert not is_retryable_error(UpstreamError("x", code="upstream_protocol_error"))
