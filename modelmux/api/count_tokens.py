"""``POST /v1/messages/count_tokens``: the prompt's size in tokens, for Anthropic's clients.

Reference: Anthropic API "Messages > Count Message tokens" (``{"input_tokens": N}``). A Claude
deployment (Anthropic, Vertex, Bedrock) gets the client's body at its own endpoint; a provider
with a counting endpoint of its own (Gemini, Vertex Gemini, Cohere, an ``openai_compatible``
server with ``tokenize``) gets the request as the Messages door translates it
(``Provider.count_tokens``); for any other the count is an estimate (``token_estimate``): a
real tokenizer where one ships for the deployment's model family, else four characters a token.
``x-modelmux-token-count`` says which it was.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from modelmux.api.caller import check_model_access
from modelmux.api.chat import upstream_headers
from modelmux.api.messages_door import (
    DROPPED_HEADER,
    TOKEN_COUNT_HEADER,
    anthropic_door,
    decode_anthropic,
    invalid,
)
from modelmux.api.responses import JSON_HEADERS
from modelmux.api.token_estimate import IMAGE_TOKENS, prompt_of
from modelmux.pipeline.tries import one_try
from modelmux.providers import bedrock_claude, claude_native
from modelmux.providers.base import CallStats, Provider
from modelmux.providers.bedrock import BedrockProvider
from modelmux.providers.claude import ClaudeProvider
from modelmux.providers.token_count import CountInput, CountUnavailable
from modelmux.schemas.anthropic_request import CountTokensRequest, MessagesRequest, count_decoder
from modelmux.schemas.openai_chat import request_decoder as chat_decoder
from modelmux.translate.messages_request import encode, messages_to_chat_request

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

log = logging.getLogger("modelmux.api")
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
        answer = await one_try(stats, bedrock_claude.count_tokens(
            provider, body, model=spec.model, forward=forward, stats=stats))
        await exchange.respond(200, [*JSON_HEADERS, (TOKEN_COUNT_HEADER, b"native"),
                                     *upstream_headers(provider, stats)], answer)
        return
    if (isinstance(provider, ClaudeProvider) and provider.endpoint.count_url is not None
            and provider.speaks_messages(spec.model)):
        stats = record.stats = CallStats()
        forward = [(k, v) for k, v in exchange.headers if k in claude_native.FORWARDED_HEADERS]
        answer = await one_try(stats, claude_native.count_tokens(
            provider, body, model=spec.model, sent_model=request.model, forward=forward,
            stats=stats))
        headers = [*JSON_HEADERS, (TOKEN_COUNT_HEADER, b"native"),
                   *upstream_headers(provider, stats)]
        await exchange.respond(200, headers, answer)
        return
    fallback = b""
    if isinstance(provider, Provider) and provider.counts_tokens(spec.model):
        stats = record.stats = CallStats()
        prompt, dropped = count_input(request)
        try:
            counted = await one_try(stats, provider.count_tokens(prompt, spec.model, stats))
        except CountUnavailable as exc:
            log.info("provider %s cannot count tokens for %s (%s); estimating", provider.name,
                     spec.model, exc.reason)
            fallback = b"; fallback=" + exc.reason.encode()
        else:
            headers = [*JSON_HEADERS, (TOKEN_COUNT_HEADER, counted.how.encode()),
                       *upstream_headers(provider, stats)]
            if dropped:
                headers.append((DROPPED_HEADER, dropped))
            await exchange.respond(200, headers, _encode({"input_tokens": counted.tokens}))
            return
    tokens, tokenizer = await app.tokens.count(spec.model, request, provider=provider.name)
    marked = b"estimate; tokenizer=" + tokenizer.encode() + fallback
    await exchange.respond(200, [*JSON_HEADERS, (TOKEN_COUNT_HEADER, marked)],
                           _encode({"input_tokens": tokens}))


def count_input(request: CountTokensRequest) -> tuple[CountInput, bytes]:
    """``request`` as the Messages door translates it for a non-Claude provider, and the
    ``x-modelmux-dropped-fields`` value of what that left out.

    Raises:
        InvalidRequest: a turn or block the translation cannot express.
    """
    as_message = MessagesRequest(
        model=request.model, messages=request.messages, max_tokens=1, system=request.system,
        tools=request.tools, tool_choice=request.tool_choice, thinking=request.thinking)
    internal, dropped = messages_to_chat_request(as_message, (), stream=False)
    try:
        chat = chat_decoder.decode(encode(internal))
    except msgspec.ValidationError as exc:
        raise invalid(f"The request cannot be expressed for this gateway: {exc}") from None
    prompt = prompt_of(request)
    return CountInput(chat, internal["messages"], internal.get("tools"), prompt.texts,
                      prompt.media * IMAGE_TOKENS), dropped.header()
