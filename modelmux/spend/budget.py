"""Budgets: the admit stage that refuses requests once a budget is spent, and the counting.

A request passes the budgets of its key, user and team (``Identity.scopes``, those with
``max_budget_usd``) and the global ``monthly_budget``. One that starts after any of them is
spent gets 429 ``insufficient_quota`` / ``budget_exceeded``. Requests already admitted finish
and are counted, so a budget can be overshot by what the requests in flight at that moment
cost (docs/spend.md). Crossing ``alert_at`` and 100 % fires one alert per threshold per period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

from modelmux.errors import BudgetExceeded
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Stage
from modelmux.spend.account import SpendRow
from modelmux.spend.counters import Counters, MemoryCounters
from modelmux.spend.periods import Labels, period_bounds, period_label
from modelmux.tenancy.records import Identity

__all__ = ["Budget", "BudgetStage", "Crossing"]

log = logging.getLogger("modelmux.spend")

STATE = "spend.budgets"


class Budget(NamedTuple):
    """One limit a request counts against: ``scope`` is global, key, user or team."""

    scope: str
    ident: str
    limit: float
    period: str

    def key(self, now: float, labels: Callable[[str, float], str] = period_label) -> str:
        return f"{self.scope}:{self.ident}:{labels(self.period, now)}"


class Crossing(NamedTuple):
    """A budget's spend passed ``threshold`` (a fraction of its limit) in this period."""

    budget: Budget
    spent: float
    threshold: float
    period_label: str


class Alerts(Protocol):
    def fire(self, crossing: Crossing) -> None: ...


class BudgetStage(Stage):
    """The admit stage for budgets; ``count`` is the cost stage's sink."""

    kind = "admit"
    name = "budgets"

    def __init__(self, counters: Counters, *, global_limit: float | None, alert_at: float,
                 alerts: Alerts | None = None, clock: Callable[[], float] = time.time,
                 seed: Callable[[Callable[[str, float], str]], Awaitable[dict[str, float]]]
                 | None = None) -> None:
        """``seed`` (in-process counters with a spend log) gives the totals the counters
        start from, keyed as ``Budget.key`` names them, before the first request is admitted."""
        self.counters = counters
        self._seed = seed
        self._seeding: asyncio.Future[None] | None = None
        self.global_limit = global_limit
        self.thresholds = tuple(sorted({alert_at, 1.0}))
        self.alerts = alerts
        self.clock = clock
        self.labels = Labels()
        self._tasks: set[asyncio.Task[None]] = set()

    def applicable(self, identity: Identity | None) -> list[Budget]:
        """Every budget a request of ``identity`` counts against."""
        out = []
        if self.global_limit is not None:
            out.append(Budget("global", "", self.global_limit, "monthly"))
        if identity is not None:
            for scope, ident, limits in identity.scopes():
                if limits.max_budget_usd is not None:
                    out.append(Budget(scope, ident, limits.max_budget_usd, limits.budget_period))
        return out

    async def on_request(self, ctx: RequestContext) -> None:
        budgets = self.applicable(ctx.identity)
        if not budgets:
            return
        if self._seed is not None:
            await self._seeded()
        now = self.clock()
        keys = [b.key(now, self.labels) for b in budgets]
        counters = self.counters
        spent = (counters.spent_now(keys) if isinstance(counters, MemoryCounters)
                 else await counters.spent(keys))
        for budget, total in zip(budgets, spent, strict=True):
            if total >= budget.limit:
                who = "global" if budget.scope == "global" else f"{budget.scope} {budget.ident}"
                raise BudgetExceeded(
                    f"The {who} budget of ${budget.limit:g} for this {budget.period} period "
                    f"({self.labels(budget.period, now)}) is spent (${total:.4f}); requests "
                    "are refused until the next period or a higher budget.")
        ctx.state[STATE] = budgets

    def adopt(self, old: BudgetStage) -> None:
        """Share ``old``'s counters (and whatever it loaded from the spend log) from now on."""
        self.counters = old.counters
        self._seed, self._seeding = old._seed, old._seeding

    async def _seeded(self) -> None:
        """Load the seed once; concurrent first requests wait for the same load."""
        if self._seeding is None:
            self._seeding = asyncio.ensure_future(self._load())
        await asyncio.shield(self._seeding)

    async def _load(self) -> None:
        seed = self._seed
        assert seed is not None and isinstance(self.counters, MemoryCounters)
        try:
            totals = await seed(self.labels)
        except Exception as exc:
            log.warning("budgets: the spend so far could not be read from the spend log (%s); "
                        "counting starts from zero", exc)
            totals = {}
        for key, usd in totals.items():
            self.counters.totals[key] = self.counters.totals.get(key, 0.0) + usd
        self._seed = None

    def count(self, ctx: RequestContext, row: SpendRow) -> None:
        """Add the request's cost to its budgets' counters (in a task: no request waits)."""
        budgets: list[Budget] | None = ctx.state.get(STATE)
        if not budgets or not row.cost_usd:
            return
        if isinstance(self.counters, MemoryCounters):  # no I/O: counted before the next request
            now = self.clock()
            keys = [b.key(now, self.labels) for b in budgets]
            self._crossed(budgets, self.counters.add_now(keys, row.cost_usd), row.cost_usd, now)
            return
        task = asyncio.get_running_loop().create_task(self._add(budgets, row.cost_usd))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, budgets: list[Budget], usd: float) -> None:
        now = self.clock()
        ttl = max(period_bounds(b.period, now)[1] - now for b in budgets) + 86_400
        totals = await self.counters.add([b.key(now, self.labels) for b in budgets], usd, ttl)
        self._crossed(budgets, totals, usd, now)

    def _crossed(self, budgets: list[Budget], totals: list[float], usd: float,
                 now: float) -> None:
        """Fire an alert for each threshold this request's ``usd`` took a budget past."""
        if self.alerts is None:
            return
        for budget, total in zip(budgets, totals):
            for threshold in self.thresholds:
                mark = threshold * budget.limit
                if total - usd < mark <= total:
                    self.alerts.fire(Crossing(budget, total, threshold,
                                              self.labels(budget.period, now)))

    async def aclose(self) -> None:
        """Wait for the counting under way."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.counters.aclose()
