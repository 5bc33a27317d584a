"""``POST /v1/messages/count_tokens``: the prompt's size in tokens, for Anthropic's clients.

Reference: Anthropic API "Messages > Count Message tokens" (``{"input_tokens": N}``). A Claude
deployment (Anthropic, Vertex) counts with its own endpoint; for any other provider the count
is an estimate, as no tokenizer of those model families is available offline: four characters
of text a token (``estimate_tokens``). ``x-modelmux-token-count`` says which it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from modelmux.api.chat import upstream_headers
from modelmux.api.caller import check_model_access
from modelmux.api.messages_door import TOKEN_COUNT_HEADER, anthropic_door, decode_anthropic
from modelmux.api.responses import JSON_HEADERS
from modelmux.providers import claude_native
from modelmux.providers.base import CallStats
from modelmux.providers.claude import ClaudeProvider
from modelmux.schemas.anthropic_request import Block, CountTokensRequest, count_decoder

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600
"""What an image or document block is counted as: about a 1.15-megapixel image
("Vision > Calculate image costs": width * height / 750)."""
_encode = msgspec.json.Encoder().encode


def estimate_tokens(request: CountTokensRequest) -> int:
    """An estimate of the request's input tokens: its text (system, messages, tool calls and
    results, tool definitions) at ``CHARS_PER_TOKEN``, plus ``IMAGE_TOKENS`` a media block."""
    chars = 0
    media = 0
    system = request.system
    if isinstance(system, str):
        chars += len(system)
    elif system is not None:
        chars += sum(len(block.text) for block in system)
    blocks: list[Block] = []
    for message in request.messages:
        if isinstance(message.content, str):
            chars += len(message.content)
        else:
            blocks.extend(message.content)
    while blocks:
        block = blocks.pop()
        chars += len(block.text or "") + len(block.name or "")
        chars += len(block.input)
        if isinstance(block.content, str):
            chars += len(block.content)
        elif block.content is not None:
            blocks.extend(block.content)
        if block.type in ("image", "document"):
            media += 1
    for tool in request.tools or ():
        chars += len(tool.name) + len(tool.description or "") + len(_encode(tool.input_schema))
    return max(1, (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN) + media * IMAGE_TOKENS


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
    answer = _encode({"input_tokens": estimate_tokens(request)})
    await exchange.respond(200, [*JSON_HEADERS, (TOKEN_COUNT_HEADER, b"estimate")], answer)
