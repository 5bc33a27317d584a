"""What every route of the Anthropic door shares: its error shape and its response headers.

``anthropic_door`` wraps a route so that whatever it raises reaches the client as Anthropic's
``{"type": "error", "error": {...}}`` with Anthropic's status for that type, and so that every
answer carries ``request-id`` (the header Anthropic's SDKs read) beside ``x-request-id``.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, TypeVar

import msgspec

from modelmux.api.chat import field_param
from modelmux.api.services import Route
from modelmux.errors import InternalError, InvalidRequest, ModelMuxError
from modelmux.server.exchange import ClientDisconnected
from modelmux.translate.messages_errors import error_body, status_and_type

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

log = logging.getLogger("modelmux.api")

REQUEST_ID_HEADER = b"request-id"
DROPPED_HEADER = b"x-modelmux-dropped-fields"
"""Names the request fields a translated call had to leave out (comma-separated)."""
TOKEN_COUNT_HEADER = b"x-modelmux-token-count"
"""``native`` (the provider counted), ``native; text`` (the provider's tokenizer counted the
prompt's text) or ``estimate; tokenizer=NAME`` (ModelMux estimated with ``o200k_base``, or
``chars``: four characters a token; ``; fallback=REASON`` when the provider could not count)
on count_tokens."""

T = TypeVar("T")


class AnthropicError(ModelMuxError):
    """A ``ModelMuxError`` as this door renders it: Anthropic's type, status and body."""

    def __init__(self, error: ModelMuxError) -> None:
        super().__init__(error.message, param=error.param, code=error.code,
                         headers=error.headers)
        self.status, self.type = status_and_type(error)
        self.cause = error

    def body(self) -> bytes:
        return error_body(self.type, self.message)


def invalid(message: str, param: str | None = None) -> InvalidRequest:
    """A 400 ``invalid_request_error`` (rendered in Anthropic's shape by the door)."""
    return InvalidRequest(message, param=param)


def decode_anthropic(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """``body`` decoded and validated by ``decoder``.

    Raises:
        InvalidRequest: not JSON, or a wrong or missing field (named in the message and
            ``param``).
    """
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        param = field_param(message)
        raise invalid(f"{param}: {message}" if param else message, param) from None
    except msgspec.DecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}") from None


def anthropic_door(route: Route) -> Route:
    """``route`` with Anthropic's error shape and the ``request-id`` header."""

    @functools.wraps(route)
    async def door(app: Services, exchange: Exchange) -> None:
        exchange.extra_headers.append((REQUEST_ID_HEADER, app.request_id(exchange).encode()))
        try:
            await route(app, exchange)
        except (AnthropicError, ClientDisconnected):
            raise
        except ModelMuxError as exc:
            raise AnthropicError(exc) from None
        except Exception:
            log.exception("unhandled error while serving %s %s", exchange.method, exchange.path)
            raise AnthropicError(InternalError("internal server error")) from None

    return door
