"""``Spend``: the spend parts one App builds from ``[[prices]]``, ``[analytics]`` and ``[auth]``.

While cost is tracked (``AnalyticsConfig.cost_tracking_on``: set, or by default with auth
keys, a spend log or a global budget): the price table and the cost stage (an account
stage). The spend log when ``[analytics] spend_log`` is true, or unset with
``[auth] mode = "keys"``. Budgets when a global ``monthly_budget`` is set or auth is on (keys,
users and teams may carry ``max_budget_usd``); their counters live in Redis when
``[state] backend = "redis"``. Alerts when a webhook or an email address is configured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from modelmux.config.paths import state_dir
from modelmux.config.schema import Config
from modelmux.pipeline.stage import Stage
from modelmux.routing.store import LimitStore
from modelmux.spend.account import CostStage, SpendSink
from modelmux.spend.alerts import Alerter
from modelmux.spend.budget import BudgetStage
from modelmux.spend.counters import Counters, MemoryCounters, RedisCounters
from modelmux.spend.forecast import Forecaster
from modelmux.spend import db
from modelmux.spend.log import SpendLog
from modelmux.spend.periods import period_bounds
from modelmux.spend.prices import PriceTable
from modelmux.spend.reports import Reporter
from modelmux.spend.schema import SPEND
from modelmux.tenancy.open import open_store
from modelmux.tenancy.records import PERIODS

__all__ = ["Spend", "SpendStore", "build_spend"]

log = logging.getLogger("modelmux.spend")


class Shared(Protocol):
    """The authenticator, whose store (built with the ``spend`` component) the log shares."""

    store: Any

    async def open(self) -> None: ...


class SpendStore:
    """The store, opened on first use, as ``SpendLog``'s and the reports' ``run``: the
    authenticator's own when auth is on (it opens and closes it), else one of its own."""

    def __init__(self, config: Config, shared: Shared | None = None) -> None:
        self.shared = shared
        self.store: Any = (shared.store if shared is not None
                           else open_store(config.auth, state_dir(), components=(SPEND,)))
        self._opened = False

    async def opened(self) -> Any:
        """The tenancy store (keys, users, teams), opened."""
        if not self._opened:
            await (self.shared.open() if self.shared is not None else self.store.open())
            self._opened = True
        return self.store

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(connection, *args)`` of ``spend.db``: on SQLite's thread, or its PostgreSQL
        twin (``spend.db_pg``) on a pooled connection."""
        await self.opened()
        pool = getattr(self.store, "pool", None)
        if pool is None:
            return await self.store.run(fn, *args)
        from modelmux.spend.db_pg import TWINS

        async with pool.acquire() as conn:
            return await TWINS[fn](conn, *args)

    async def aclose(self) -> None:
        if self._opened and self.shared is None:
            await self.store.close()
        self._opened = False


def _counters(config: Config, limits: LimitStore | None) -> Counters:
    if config.state.backend == "redis" and limits is not None:
        from modelmux.state.redis import RedisLimits

        if isinstance(limits, RedisLimits):
            return RedisCounters(limits.client, config.state.key_prefix,
                                 config.state.timeout_ms / 1000, limits.errors)
    return MemoryCounters()


class Spend:
    """Prices, the cost stage and, when on, the spend log, budgets and alerts."""

    def __init__(self, config: Config, prices: PriceTable | None = None,
                 limits: LimitStore | None = None, shared: Shared | None = None) -> None:
        analytics = config.analytics
        tracking = analytics.cost_tracking
        self.config = config
        self.prices = prices or PriceTable(config.prices)
        keeps_log = analytics.spend_log
        if keeps_log is None:
            keeps_log = config.auth.mode == "keys"
        self.store = SpendStore(config, shared) if keeps_log else None
        self.log = (SpendLog(self.store.run, retention_days=analytics.spend_log_retention_days)
                    if self.store is not None else None)
        self.alerts = Alerter(webhook=tracking.alert_webhook, emails=tracking.alert_email,
                              smtp=analytics.smtp)
        self.reporter: Reporter | None = None
        self.forecaster: Forecaster | None = None
        reports = analytics.usage_reports
        if self.store is not None and (tracking.alert_webhook or tracking.alert_email):
            self.forecaster = Forecaster(
                self.store.run, self.store.opened, self.alerts,
                global_budget=tracking.monthly_budget, webhook=tracking.alert_webhook,
                emails=tracking.alert_email, interval=tracking.forecast_interval)
        if reports and reports.destinations and self.store is not None:
            self.reporter = Reporter(self.store.run, self.alerts, analytics,
                                     store=self.store.opened)
        elif reports and reports.destinations:
            log.warning("[analytics.usage_reports] needs the spend log: set [analytics] "
                        "spend_log = true; no report is sent")
        self._started = False
        self.budgets = None
        if tracking.monthly_budget is not None or config.auth.mode == "keys":
            counters = _counters(config, limits)
            if isinstance(counters, MemoryCounters) and config.server.workers > 1:
                log.warning("budgets are counted by each of the %d workers alone; set [state] "
                            "backend = \"redis\" for one total", config.server.workers)
            seed = (self._seed if isinstance(counters, MemoryCounters) and self.log is not None
                    else None)
            self.budgets = BudgetStage(counters, global_limit=tracking.monthly_budget,
                                       alert_at=tracking.alert_at, alerts=self.alerts,
                                       seed=seed)
        sinks: list[SpendSink] = []
        if self.log is not None:
            spend_log = self.log
            sinks.append(lambda ctx, row: spend_log.add(row))
        if self.budgets is not None:
            sinks.append(self.budgets.count)
        self.cost_stage = CostStage(self.prices, sinks)

    async def _seed(self, labels: Callable[[str, float], str]) -> dict[str, float]:
        """What each budget's period has spent so far, from the spend log (in-process
        counters start from it, so a restart forgets nothing that was written)."""
        assert self.store is not None and self.log is not None
        await self.log.flush()
        now = time.time()
        out: dict[str, float] = {}
        for period in PERIODS:
            spent = await self.store.run(db.spent_since, period_bounds(period, now)[0])
            for (scope, ident), usd in spent.items():
                out[f"{scope}:{ident}:{labels(period, now)}"] = usd
        return out

    @property
    def stages(self) -> list[Stage]:
        """The pipeline stages spend adds: budgets (admit) and the cost stage (account)."""
        return [s for s in (self.budgets, self.cost_stage) if s is not None]

    def adopt(self, old: Spend) -> None:
        """After a reload: keep counting in the in-process budget counters of the
        configuration this one replaces (Redis counters are shared anyway)."""
        mine, theirs = self.budgets, old.budgets
        if (mine is not None and theirs is not None
                and isinstance(mine.counters, MemoryCounters)
                and isinstance(theirs.counters, MemoryCounters)):
            mine.adopt(theirs)

    def start(self) -> None:
        """Start the background parts that run on a schedule (once; cheap to call again)."""
        if self._started:
            return
        self._started = True
        if self.reporter is not None:
            self.reporter.start()
        if self.forecaster is not None:
            self.forecaster.start()

    def priced(self, model: str) -> bool:
        """True when upstream ``model`` has a price (so a stream is worth costing)."""
        return self.prices.lookup(model) is not None

    async def aclose(self) -> None:
        """Count what is under way, send pending alerts, flush the spend log, close the store."""
        if self.reporter is not None:
            await self.reporter.aclose()
        if self.forecaster is not None:
            await self.forecaster.aclose()
        if self.budgets is not None:
            await self.budgets.aclose()
        await self.alerts.aclose()
        if self.log is not None:
            await self.log.aclose()
        if self.store is not None:
            await self.store.aclose()


def build_spend(config: Config, prices: PriceTable | None = None,
                limits: LimitStore | None = None, shared: Shared | None = None) -> Spend | None:
    """The spend parts, or None when cost tracking is off; ``shared`` is the authenticator
    when auth is on (its store keeps the spend log too)."""
    if not config.analytics.cost_tracking_on(config.auth.mode):
        return None
    return Spend(config, prices, limits, shared)
