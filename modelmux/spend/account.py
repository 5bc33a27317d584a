"""The cost stage (an account stage): what each answered request cost, for the client, the
logs and the budgets.

The cost is usage × price (``spend.cost``) of the deployment that answered. A whole answer
carries it as ``x-modelmux-cost-usd``; every request puts it on its record (access log, the
``modelmux_cost_usd_total`` metric) and hands a ``SpendRow`` to the sinks (spend log, budgets).
A model with no price costs "unknown" (None), never 0, and is warned about once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from msgspec import Struct

from modelmux.errors import Headers
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Stage
from modelmux.providers.base import note_answer_usage
from modelmux.spend.cost import cost_usd, format_cost
from modelmux.spend.prices import PriceTable

__all__ = ["COST_HEADER", "CostStage", "SpendRow", "SpendSink"]

log = logging.getLogger("modelmux.spend")

COST_HEADER = b"x-modelmux-cost-usd"
CACHE_NOTE = "cache"
"""``ctx.state`` key of the response cache's note (``pipeline.cache``): on a hit, the stored
answer's provider, upstream model and usage."""
MAX_WARNED = 1000


class SpendRow(Struct, frozen=True, kw_only=True):
    """One request as the spend log keeps it (times in Unix seconds, UTC)."""

    time: float
    request_id: str
    key: str | None
    user: str | None
    team: str | None
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    cost_usd: float | None
    latency_ms: float
    status: int
    cache_hit: bool = False
    saved_usd: float | None = None  # a cache hit: what its stored answer cost when it was made


SpendSink = Callable[[RequestContext, SpendRow], None]
"""What gets each request's row: the spend log, the budget counters. Called on the event
loop; must not block (queue the work)."""


class CostStage(Stage):
    """Costs each request; ``sinks`` (spend log, budgets) get one ``SpendRow`` per request
    that reached a deployment."""

    kind = "account"
    name = "spend"

    def __init__(self, prices: PriceTable, sinks: Sequence[SpendSink] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.prices = prices
        self.sinks = tuple(sinks)
        self.clock = clock
        self._warned: set[str] = set()

    def cost(self, ctx: RequestContext) -> float | None:
        """The request's cost in USD, worked out once and kept on its record; None when the
        request reached no deployment, reported no usage or its model has no price."""
        record = ctx.record
        if record.cost_usd is not None:
            return record.cost_usd
        stats, model = record.stats, record.upstream_model
        if stats is None or model is None:
            return None
        if stats.tokens is None and ctx.answer is not None:
            note_answer_usage(stats, ctx.answer)
        if stats.tokens is None:
            return None
        price = self.prices.lookup(model)
        if price is None:
            self._warn(model)
            return None
        record.cost_usd = cost_usd(price, *stats.tokens, stats.cache)
        return record.cost_usd

    def answer_headers(self, ctx: RequestContext) -> Headers:
        cost = self.cost(ctx)
        return [] if cost is None else [(COST_HEADER, format_cost(cost))]

    def on_answer(self, ctx: RequestContext) -> None:
        record = ctx.record
        identity = ctx.identity
        if identity is not None:
            record.team = identity.team_id
        hit = ctx.state.get(CACHE_NOTE)
        if hit is not None and hit.get("hit"):
            self._account_hit(ctx, hit)
            return
        cost = self.cost(ctx)
        stats = record.stats
        if stats is None or record.provider is None or not self.sinks:
            return
        tokens = stats.tokens or (0, 0)
        cache = stats.cache or (0, 0)
        now = self.clock()
        row = SpendRow(
            time=now, request_id=ctx.request_id,
            key=identity.key.id if identity is not None and identity.key is not None else None,
            user=identity.user.id if identity is not None and identity.user is not None else None,
            team=record.team, model=record.upstream_model or ctx.model, provider=record.provider,
            input_tokens=tokens[0], output_tokens=tokens[1], cached_tokens=cache[0],
            cache_write_tokens=cache[1], cost_usd=cost,
            latency_ms=round((time.perf_counter_ns() - stats.started_ns) / 1e6, 3)
            if stats.started_ns else 0.0,
            status=ctx.status)
        self._emit(ctx, row)

    def _account_hit(self, ctx: RequestContext, hit: dict[str, Any]) -> None:
        """A response-cache hit costs nothing; its row keeps what the stored answer cost when
        it was made (``saved_usd``; None when that call reported no usage or has no price)."""
        ctx.record.cost_usd = 0.0
        if not self.sinks:
            return
        model, usage = hit.get("model") or ctx.model, hit.get("usage")
        saved = None
        if usage is not None:
            price = self.prices.lookup(model)
            if price is None:
                self._warn(model)
            else:
                saved = cost_usd(price, usage[0], usage[1], None)
        identity = ctx.identity
        row = SpendRow(
            time=self.clock(), request_id=ctx.request_id,
            key=identity.key.id if identity is not None and identity.key is not None else None,
            user=identity.user.id if identity is not None and identity.user is not None else None,
            team=ctx.record.team, model=model, provider=hit.get("provider") or "cache",
            input_tokens=0, output_tokens=0, cached_tokens=0, cache_write_tokens=0,
            cost_usd=0.0, latency_ms=0.0, status=ctx.status, cache_hit=True, saved_usd=saved)
        self._emit(ctx, row)

    def _emit(self, ctx: RequestContext, row: SpendRow) -> None:
        for sink in self.sinks:
            try:
                sink(ctx, row)
            except Exception:
                log.exception("spend sink failed for request %s", ctx.request_id)

    def _warn(self, model: str) -> None:
        if model in self._warned or len(self._warned) >= MAX_WARNED:
            return
        self._warned.add(model)
        log.warning("no price for model %r: its requests are logged with cost unknown; add a "
                    "[[prices]] entry (see `modelmux prices`)", model)
