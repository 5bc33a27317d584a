"""``POST /v1/embeddings``: OpenAI's embeddings door, over the same pipeline and call stage as
chat (middleware, route stage, retries, fallback, limits, metrics, access log).

The answer is always one JSON body: OpenAI's ``object: list`` of ``embedding`` objects in input
order, ``usage.prompt_tokens`` summed over the batches a provider cut the input into.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.api.chat import decode_body, observed_headers, run_observed, serve_call
from modelmux.api.responses import JSON_HEADERS
from modelmux.errors import InvalidRequest
from modelmux.pipeline.context import RequestContext
from modelmux.providers.base import EmbedCall, usage_of
from modelmux.routing.models import DeploymentSpec
from modelmux.schemas.openai_embeddings import EmbeddingRequest, embedding_decoder

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

DOOR = "openai.embeddings"


def decode_embedding_request(body: bytes) -> EmbeddingRequest:
    """Decode and validate an embeddings request body.

    Raises:
        InvalidRequest: not JSON, a wrong or missing field (named in ``param``), or no input.
    """
    request = decode_body(body, embedding_decoder, "embeddings request")
    items = request.items()
    if not items or any(len(item) == 0 for item in items):
        raise InvalidRequest("`input` must be a non-empty string, token array, or a non-empty "
                             "list of them.", param="input", code="invalid_value")
    return request


async def create_embeddings(app: Services, exchange: Exchange) -> None:
    """Answer one embeddings request through the pipeline."""
    body = await exchange.read_body()
    request = decode_embedding_request(body)
    record = app.record(exchange)
    record.model, record.mode = request.model, "never"
    ctx = RequestContext(DOOR, request, body, exchange.headers, app.request_id(exchange), record,
                         response_headers=exchange.extra_headers)
    ctx.client = exchange.client
    await run_observed(app, exchange, ctx, _call)


async def _call(app: Services, exchange: Exchange, ctx: RequestContext) -> None:
    """The stages before the call, every attempt, and the answer."""
    record = ctx.record
    await app.pipeline.before_call(ctx)
    request, body = ctx.request, ctx.body
    if not isinstance(request, EmbeddingRequest):
        raise InvalidRequest("A middleware turned this embeddings request into another kind.")
    record.model = request.model
    public_model, request_id = ctx.model, ctx.request_id

    def new_call(spec: DeploymentSpec) -> EmbedCall:
        return EmbedCall(request, body, model=spec.model, public_model=public_model,
                         request_id=request_id)

    served = await serve_call(app, exchange, ctx, new_call, False, with_output=False)
    provider, stats = served.provider, served.call.stats
    ctx.answer = served.answer
    try:
        if stats.tokens is None:
            stats.tokens = usage_of(served.answer)
        if app.pipeline.heads:
            exchange.extra_headers += app.pipeline.answer_headers(ctx)
        await exchange.respond(200, [*JSON_HEADERS,
                                     *observed_headers(record, exchange, provider, stats)],
                               served.answer)
    finally:
        app.dispatcher.finish(served)
