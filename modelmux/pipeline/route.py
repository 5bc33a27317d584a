"""The route stage: resolve the model to its deployments and let the router order them."""

from __future__ import annotations

from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Stage
from modelmux.routing.facts import (
    estimate_prompt_tokens,
    input_facts,
    max_tokens_of,
    request_facts,
)
from modelmux.routing.models import ModelIndex
from modelmux.routing.router import Estimate, Router
from modelmux.schemas.openai_chat import ChatCompletionRequest


class RouteStage(Stage):
    """Sets ``ctx.plan`` (deployments in the order to try) and ``ctx.estimate``.

    Facts are computed only when routing rules exist to read them.
    """

    kind = "route"
    name = "route"

    def __init__(self, models: ModelIndex, router: Router) -> None:
        self.models = models
        self.router = router

    async def on_request(self, ctx: RequestContext) -> None:
        """Raises:
            ModelNotFound: no provider serves the model.
            InvalidRequest: a routing header holds a value it cannot (see ``request_facts``).
        """
        request, body = ctx.request, ctx.body
        group = self.models.group(request.model)
        if self.router.rules:
            ctx.facts = (request_facts(request, body, ctx.headers)
                         if isinstance(request, ChatCompletionRequest)
                         else input_facts(request, body, ctx.headers))
        first = group.deployments[0]
        record = ctx.record
        record.provider, record.provider_type = first.provider.name, first.provider.type
        record.upstream_model = first.model
        ctx.estimate = estimate = Estimate(estimate_prompt_tokens(body), max_tokens_of(request))
        ctx.plan = self.router.plan(self.models, group, ctx.facts, estimate)
