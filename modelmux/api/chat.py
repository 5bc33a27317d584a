"""``POST /v1/chat/completions``: validate, pick the provider, answer or stream.

The request is decoded into msgspec Structs so a missing or wrong-typed field is a 400 naming
the field. Streaming waits for the provider's first chunk before sending the response head, so
failures before the first byte still get their proper HTTP status.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

import msgspec

from modelmux.api.responses import JSON_HEADERS, SSE_HEADERS, error_event
from modelmux.errors import InternalError, InvalidRequest, ModelMuxError
from modelmux.providers.base import ChatCall
from modelmux.schemas.openai_chat import ChatCompletionRequest, request_decoder
from modelmux.server.exchange import ClientDisconnected

if TYPE_CHECKING:
    from modelmux.api.app import App
    from modelmux.server.exchange import Exchange

log = logging.getLogger("modelmux.api")

_AT = re.compile(r" - at `\$\.?(.*)`$")
_MISSING = re.compile(r"missing required field `([^`]*)`")


def _param(message: str) -> str | None:
    """The field path named by a msgspec validation message, OpenAI style (``messages[0].role``)."""
    at = _AT.search(message)
    path = at.group(1) if at else ""
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


def decode_request(body: bytes) -> ChatCompletionRequest:
    """Decode and validate a chat completion request body.

    Raises:
        InvalidRequest: not JSON, a wrong or missing field (named in ``param``), or no messages.
    """
    if not body:
        raise InvalidRequest("The request body is empty; expected a JSON chat completion request.",
                             code="invalid_json")
    try:
        request = request_decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise InvalidRequest(f"Invalid request: {message}", param=_param(message),
                             code="invalid_value") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not request.messages:
        raise InvalidRequest("`messages` must contain at least one message.", param="messages",
                             code="invalid_value")
    return request


async def create_chat_completion(app: App, exchange: Exchange) -> None:
    body = await exchange.read_body()
    request = decode_request(body)
    provider, upstream_model = app.models.resolve(request.model)
    call = ChatCall(
        request,
        body,
        model=upstream_model,
        public_model=request.model,
        completion_id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        request_id=app.request_id(exchange),
    )
    if not call.stream:
        await exchange.respond(200, list(JSON_HEADERS), await provider.complete(call))
        return
    chunks = provider.stream(call)
    try:
        first = await anext(chunks)  # errors up to here still get a proper status
    except StopAsyncIteration:
        raise InternalError(f"provider {provider.name!r} produced an empty stream") from None
    try:
        await exchange.start(200, list(SSE_HEADERS))
        await exchange.write(first)
        async for piece in chunks:
            await exchange.write(piece)
    except ClientDisconnected:
        raise
    except ModelMuxError as exc:
        log.warning("stream from %s failed after the first byte: %s", provider.name, exc.message)
        await exchange.write(error_event(exc))
    except Exception:
        log.exception("stream from %s failed after the first byte", provider.name)
        await exchange.write(error_event(InternalError("internal error while streaming")))
    finally:
        await chunks.aclose()
    await exchange.end()
