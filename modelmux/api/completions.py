"""``POST /v1/completions``: OpenAI's legacy text completions door, passed through.

vLLM and llama.cpp users still call it. The body goes to the provider's ``/completions`` with
only ``model`` changed (as chat's does), through the same pipeline and call stage as chat;
streamed answers are relayed chunk by chunk. Provider types without the endpoint answer 400
``completions_not_supported`` naming the types that have it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.api.chat import decode_body, deliver, run_observed, serve_call
from modelmux.errors import InvalidRequest
from modelmux.pipeline.context import RequestContext
from modelmux.providers.base import TextCall
from modelmux.routing.models import DeploymentSpec
from modelmux.schemas.openai_completions import CompletionRequest, completion_decoder

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

DOOR = "openai.completions"


def decode_completion_request(body: bytes) -> CompletionRequest:
    """Decode and validate a legacy completion request body.

    Raises:
        InvalidRequest: not JSON, or a wrong or missing field (named in ``param``).
    """
    return decode_body(body, completion_decoder, "completion request")


async def create_completion(app: Services, exchange: Exchange) -> None:
    """Answer one legacy completion request, as JSON or as the upstream's SSE stream."""
    body = await exchange.read_body()
    request = decode_completion_request(body)
    record = app.record(exchange)
    record.model = request.model
    ctx = RequestContext(DOOR, request, body, exchange.headers, app.request_id(exchange), record,
                         response_headers=exchange.extra_headers)
    ctx.client = exchange.client
    await run_observed(app, exchange, ctx, _call)


async def _call(app: Services, exchange: Exchange, ctx: RequestContext) -> None:
    """The stages before the call, every attempt, and the delivery."""
    record = ctx.record
    await app.pipeline.before_call(ctx)
    request, body = ctx.request, ctx.body
    if not isinstance(request, CompletionRequest):
        raise InvalidRequest("A middleware turned this completion request into another kind.")
    streamed = ctx.streamed = bool(request.stream)
    delivery = "standard" if streamed else "never"
    record.model, record.mode = request.model, delivery
    public_model, request_id = ctx.model, ctx.request_id
    spend = app.spend
    options = request.stream_options
    costed = spend is not None and streamed and not (options and options.include_usage)

    def new_call(spec: DeploymentSpec) -> TextCall:
        call = TextCall(request, body, model=spec.model, public_model=public_model,
                        request_id=request_id)
        if costed:
            assert spend is not None
            call.hide_usage = spend.priced(spec.model)
        return call

    served = await serve_call(app, exchange, ctx, new_call, streamed)
    if not streamed:
        ctx.answer = served.answer
        if app.pipeline.heads:
            exchange.extra_headers += app.pipeline.answer_headers(ctx)
    try:
        await deliver(app, exchange, record, served, delivery)
    finally:
        app.dispatcher.finish(served)
