"""``POST /v1/messages/count_tokens``: the prompt's size in tokens, for Anthropic's clients.

Reference: Anthropic API "Messages > Count Message tokens" (``{"input_tokens": N}``). A Claude
deployment (Anthropic, Vertex) counts with its own endpoint; for any other provider the count
is an estimate (``token_estimate``): a real tokenizer where one ships for the deployment's
model family, else four characters a token. ``x-modelmux-token-count`` says which it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from modelmux.api.caller import check_model_access
from modelmux.api.chat import upstream_headers
from modelmux.api.messages_door import TOKEN_COUNT_HEADER, anthropic_door, decode_anthropic
from modelmux.api.responses import JSON_HEADERS
from modelmux.providers import bedrock_claude, claude_native
from modelmux.providers.base import CallStats
from modelmux.providers.bedrock import BedrockProvider
from modelmux.providers.claude import ClaudeProvider
from modelmux.schemas.anthropic_request import count_decoder

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

_encode = msgspec.json.Encoder().encode


@anthropic_door
async def count_tokens(app: Services, exchange: Exchange) -> None:
    """Count with the model's first deployment when it is Claude, else estimate.

    Raises:
        InvalidRequest: a missing or wrong-typed field.
        ModelNotFound: no provider serves the model.
        ModelMuxError: the Claude endpoint's own error.
    """
    body = await exchange.read_body()
    request = decode_anthropic(body, count_decoder)
    if app.auth is not None:
        await check_model_access(app, exchange, request.model)
    record = app.record(exchange)
    record.model = request.model
    spec = app.models.group(request.model).deployments[0]
    provider = spec.provider
    record.provider, record.provider_type, record.upstream_model = (
        provider.name, provider.type, spec.model)
    if isinstance(provider, BedrockProvider) and provider.speaks_messages(spec.model):
        stats = record.stats = CallStats()
        forward = [(k, v) for k, v in exchange.headers if k in claude_native.FORWARDED_HEADERS]
        answer = await bedrock_claude.count_tokens(provider, body, model=spec.model,
                                                   forward=forward, stats=stats)
        await exchange.respond(200, [*JSON_HEADERS, (TOKEN_COUNT_HEADER, b"native"),
                                     *upstream_headers(provider, stats)], answer)
        return
    if (isinstance(provider, ClaudeProvider) and provider.endpoint.count_url is not None
            and provider.speaks_messages(spec.model)):
        stats = record.stats = CallStats()
        forward = [(k, v) for k, v in exchange.headers if k in claude_native.FORWARDED_HEADERS]
        answer = await claude_native.count_tokens(provider, body, model=spec.model,
                                                  sent_model=request.model, forward=forward,
                                                  stats=stats)
        headers = [*JSON_HEADERS, (TOKEN_COUNT_HEADER, b"native"),
                   *upstream_headers(provider, stats)]
        await exchange.respond(200, headers, answer)
        return
    tokens, tokenizer = await app.tokens.count(spec.model, request, provider=provider.name)
    marked = b"estimate; tokenizer=" + tokenizer.encode()
    await exchange.respond(200, [*JSON_HEADERS, (TOKEN_COUNT_HEADER, marked)],
                           _encode({"input_tokens": tokens}))
