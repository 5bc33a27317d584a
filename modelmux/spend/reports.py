"""Scheduled usage reports, sent by a background task.

After each UTC day (``schedule = "daily"``) or ISO week (``"weekly"``) ends, the totals of that
period by team, key and model go to the ``[analytics.usage_reports]`` destinations, with this
month's spend so far, its forecast and every budget's forecast (``spend.forecast``). Each
report is claimed in the store first (``spend_notices``), so of several instances sharing it
exactly one sends it. Forecast alerts are ``spend.forecast.Forecaster``'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from modelmux.config.features import AnalyticsConfig
from modelmux.spend import db
from modelmux.spend.alerts import Alerter
from modelmux.spend.forecast import Run, forecasts
from modelmux.spend.periods import period_bounds, period_label
from modelmux.spend.report import forecast, forecast_lines

__all__ = ["Reporter"]

log = logging.getLogger("modelmux.spend")

HOUR = 3600.0


class Reporter:
    """Sends each period's report after it ends; ``tick`` does one round of checks (the
    loop calls it; tests call it with their own clock). ``store`` gives the tenancy store
    whose keys, users and teams carry budgets (None: the global budget only)."""

    def __init__(self, run: Run, alerter: Alerter, analytics: AnalyticsConfig, *,
                 store: Callable[[], Awaitable[Any]] | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.run = run
        self.store = store
        self.alerter = alerter
        self.reports = analytics.usage_reports
        self.budget = analytics.cost_tracking.monthly_budget
        tracking = analytics.cost_tracking
        self.alert_webhook, self.alert_email = tracking.alert_webhook, tracking.alert_email
        self.clock = clock
        self.sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (once; on the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name="modelmux-spend-reports")

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("usage reports: a round failed; trying again in an hour")
            await self.sleep(self._wait())

    def _wait(self) -> float:
        """Seconds to the next round: an hour, or less to the end of the report period."""
        now = self.clock()
        if self.reports is None:
            return HOUR
        period = "daily" if self.reports.schedule == "daily" else "weekly"
        return max(min(HOUR, period_bounds(period, now)[1] - now + 1.0), 1.0)

    async def tick(self) -> None:
        """Send the last period's report if due and not yet sent."""
        now = self.clock()
        if self.reports is not None and self.reports.destinations:
            await self._report(now)

    async def _report(self, now: float) -> None:
        assert self.reports is not None
        period = "daily" if self.reports.schedule == "daily" else "weekly"
        start = period_bounds(period, now)[0]
        last_start = period_bounds(period, start - 1.0)[0]
        label = period_label(period, last_start)
        if not await self.run(db.claim, f"report:{period}:{label}", now):
            return
        payload: dict[str, Any] = {"type": "usage_report", "period": period, "label": label,
                                   "since": last_start, "until": start}
        for by in ("team", "key", "model"):
            payload[f"by_{by}"] = await self.run(db.usage, by, last_start, start)
        payload["total_usd"] = round(sum(r["cost_usd"] for r in payload["by_model"]), 6)
        payload.update(await self._month(now))
        webhook = self.reports.webhook or self.alert_webhook
        emails = self.reports.email or self.alert_email
        destinations = self.reports.destinations
        self.alerter.send(payload, f"ModelMux usage report {label}: "
                          f"${payload['total_usd']:.2f}", _text(payload),
                          webhook if "webhook" in destinations else None,
                          emails if "email" in destinations else [])

    async def _month(self, now: float) -> dict[str, Any]:
        start = period_bounds("monthly", now)[0]
        rows = await self.run(db.usage, "model", start, now + 1.0)
        spent = sum(r["cost_usd"] for r in rows)
        return {"month_to_date_usd": round(spent, 6),
                "forecast_usd": round(forecast(spent, "monthly", now), 6),
                "monthly_budget": self.budget,
                "forecasts": await forecasts(self.run, await self._tenancy(), self.budget, now)}

    async def _tenancy(self) -> Any:
        return None if self.store is None else await self.store()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _text(payload: dict[str, Any]) -> str:
    lines = [f"ModelMux usage, {payload['period']} {payload['label']}: "
             f"${payload['total_usd']:.4f}", ""]
    for by in ("team", "key", "model"):
        lines.append(f"By {by}:")
        for row in payload[f"by_{by}"]:
            lines.append(f"  {row['group'] or '-'}: {row['requests']} requests, "
                         f"{row['input_tokens']} in / {row['output_tokens']} out tokens, "
                         f"${row['cost_usd']:.4f}")
        lines.append("")
    lines.append(f"This month so far: ${payload['month_to_date_usd']:.4f}; forecast for the "
                 f"month: ${payload['forecast_usd']:.4f}")
    if payload["forecasts"]:
        lines += ["", "Budgets (spent so far, forecast for the period's end):"]
        lines += [f"  {line}" for line in forecast_lines(payload["forecasts"])]
    return "\n".join(lines) + "\n"
