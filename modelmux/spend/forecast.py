"""Forecasts per budget: each budget's period-end spend projected from the spend log.

``forecasts`` lists every budget with a period (global, and each team, user and unrevoked key
with ``max_budget_usd`` and a daily, weekly or monthly ``budget_period``) with its spend so
far (all instances' rows) and its projection (``report.forecast``). ``Forecaster`` runs it in a
background task every ``forecast_interval`` seconds and sends one ``forecast_alert`` per budget
per period when the projection first passes the budget, claimed in the store first
(``spend_notices``) so that of several instances exactly one sends it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from modelmux.spend import db
from modelmux.spend.alerts import Alerter
from modelmux.spend.periods import period_bounds, period_label
from modelmux.spend.report import forecast

__all__ = ["Forecaster", "forecasts", "notice_name"]

log = logging.getLogger("modelmux.spend")

Run = Callable[..., Awaitable[Any]]


async def _budgets(store: Any, global_budget: float | None,
                   now: float) -> list[tuple[str, str | None, float, str, str | None]]:
    """(scope, id, budget, period, team) of each budget that has a period."""
    out: list[tuple[str, str | None, float | None, str, str | None]] = []
    if global_budget is not None:
        out.append(("global", None, global_budget, "monthly", None))
    if store is not None:
        for team in await store.list_teams():
            out.append(("team", team.id, team.max_budget_usd, team.budget_period, team.id))
        for user in await store.list_users():
            out.append(("user", user.id, user.max_budget_usd, user.budget_period, user.team_id))
        for key in await store.list_keys():
            if key.revoked_at is None and (key.expires_at is None or key.expires_at > now):
                out.append(("key", key.id, key.max_budget_usd, key.budget_period, key.team_id))
    return [(scope, ident, budget, period, team) for scope, ident, budget, period, team in out
            if budget is not None and period != "total"]


async def forecasts(run: Run, store: Any, global_budget: float | None, now: float,
                    team: str | None = None) -> list[dict[str, Any]]:
    """Each budget's forecast, most over its budget first: scope, id, team, period,
    period_label, spent, forecast, budget. ``run`` runs ``spend.db`` queries, ``store`` is
    the tenancy store holding the keys, users and teams; ``team`` keeps that team's only."""
    budgets = await _budgets(store, global_budget, now)
    if team is not None:
        budgets = [b for b in budgets if b[4] == team]
    spent: dict[str, dict[tuple[str, str], float]] = {}
    out = []
    for scope, ident, budget, period, owner in budgets:
        if period not in spent:
            spent[period] = await run(db.spent_since, period_bounds(period, now)[0])
        so_far = spent[period].get((scope, ident or ""), 0.0)
        out.append({"scope": scope, "id": ident, "team": owner, "period": period,
                    "period_label": period_label(period, now), "spent": round(so_far, 6),
                    "forecast": round(forecast(so_far, period, now), 6), "budget": budget})
    out.sort(key=_order)
    return out


def _order(item: dict[str, Any]) -> tuple[float, str, str]:
    """Most over its budget first, then by scope and id."""
    share = item["forecast"] / item["budget"] if item["budget"] else 0.0
    return -share, item["scope"], item["id"] or ""


def notice_name(item: dict[str, Any]) -> str:
    """The ``spend_notices`` name of a forecast alert: one per budget per period."""
    if item["scope"] == "global":
        return f"forecast:{item['period_label']}"
    return f"forecast:{item['scope']}:{item['id']}:{item['period_label']}"


class Forecaster:
    """Checks every budget's forecast each ``interval`` seconds and alerts once per budget
    per period when it passes; ``tick`` does one round (the loop calls it; tests call it with
    their own clock)."""

    def __init__(self, run: Run, store: Any, alerter: Alerter, *,
                 global_budget: float | None, webhook: str | None, emails: list[str],
                 interval: float, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.run, self.store, self.alerter = run, store, alerter
        self.global_budget = global_budget
        self.webhook, self.emails = webhook, emails
        self.interval = interval
        self.clock, self.sleep = clock, sleep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (once; on the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name="modelmux-spend-forecast")

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("forecast: a round failed; trying again in %gs", self.interval)
            await self.sleep(self.interval)

    async def tick(self) -> list[dict[str, Any]]:
        """Compute the forecasts and alert for each newly over its budget; returns those
        this instance alerted for."""
        now = self.clock()
        store = await self.store() if callable(self.store) else self.store
        sent = []
        for item in await forecasts(self.run, store, self.global_budget, now):
            if item["forecast"] <= item["budget"]:
                continue
            if not await self.run(db.claim, notice_name(item), now):
                continue
            self._send(item)
            sent.append(item)
        return sent

    def _send(self, item: dict[str, Any]) -> None:
        payload = {"type": "forecast_alert", "scope": item["scope"], "id": item["id"],
                   "spent": item["spent"], "forecast": item["forecast"],
                   "budget": item["budget"], "period": item["period"],
                   "period_label": item["period_label"]}
        who = "global" if item["scope"] == "global" else f"{item['scope']} {item['id']}"
        subject = (f"ModelMux: the {who} {item['period']} spend is forecast at "
                   f"${item['forecast']:.2f}, over its ${item['budget']:g} budget "
                   f"({item['period_label']})")
        log.warning("%s", subject.removeprefix("ModelMux: "))
        self.alerter.send(payload, subject, json.dumps(payload, indent=2), self.webhook,
                          self.emails)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
