"""Scheduled usage reports and the forecast alert: a real SQLite store, a loopback webhook
receiver and a loopback SMTP server; two reporters sharing the store send each notice once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from modelmux.config.features import (AnalyticsConfig, AuthConfig, CostTrackingConfig,
                                      SmtpConfig, UsageReportsConfig)
from modelmux.spend import db
from modelmux.spend.account import SpendRow
from modelmux.spend.alerts import Alerter
from modelmux.spend.forecast import Forecaster
from modelmux.spend.reports import Reporter
from modelmux.spend.schema import SPEND
from modelmux.tenancy.open import open_store
from tests.fakes.smtp import FakeSMTP
from tests.fakes.webhook import Webhook

NOW = dt.datetime(2026, 12, 6, 0, 30, tzinfo=dt.timezone.utc).timestamp()
YESTERDAY = NOW - 12 * 3600


def row(at: float, team: str, cost: float) -> SpendRow:
    return SpendRow(time=at, request_id="r", key="k1", user=None, team=team, model="gpt-4o",
                    provider="openai", input_tokens=100, output_tokens=10, cached_tokens=0,
                    cache_write_tokens=0, cost_usd=cost, latency_ms=1.0, status=200)


def test_daily_report_and_forecast_alert_are_sent_once(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(AuthConfig(sqlite_path=str(tmp_path / "m.db")), tmp_path,
                           components=(SPEND,))
        await store.open()
        await store.run(db.insert, [row(YESTERDAY, "a", 0.75), row(YESTERDAY, "b", 0.25),
                                    row(NOW - 3 * 86_400, "a", 4.0), row(NOW - 60, "a", 9.0)])
        async with Webhook() as hook, FakeSMTP() as smtp:
            analytics = AnalyticsConfig(
                cost_tracking=CostTrackingConfig(monthly_budget=20.0,
                                                 alert_webhook=hook.origin + "/alerts"),
                usage_reports=UsageReportsConfig(schedule="daily",
                                                 destinations=["webhook", "email"],
                                                 webhook=hook.origin + "/reports",
                                                 email=["boss@example.com"]),
                smtp=SmtpConfig(port=smtp.port))
            alerter = Alerter(webhook=hook.origin + "/alerts", emails=[],
                              smtp=analytics.smtp)
            reporters = [Reporter(store.run, alerter, analytics, clock=lambda: NOW)
                         for _ in range(2)]
            forecasters = [Forecaster(store.run, None, alerter, global_budget=20.0,
                                      webhook=hook.origin + "/alerts", emails=[],
                                      interval=60.0, clock=lambda: NOW) for _ in range(2)]
            for reporter, forecaster in zip(reporters * 2, forecasters * 2):
                await reporter.tick()  # two instances, two rounds each
                await forecaster.tick()
            await alerter.aclose()
            kinds = sorted(doc["type"] for doc in hook.received)
            assert kinds == ["forecast_alert", "usage_report"]
            report = next(doc for doc in hook.received if doc["type"] == "usage_report")
            assert (report["period"], report["label"]) == ("daily", "2026-12-05")
            assert [(r["group"], r["cost_usd"]) for r in report["by_team"]] == [
                ("a", 0.75), ("b", 0.25)]
            assert report["total_usd"] == 1.0
            assert report["month_to_date_usd"] == 14.0
            assert [(f["scope"], f["spent"]) for f in report["forecasts"]] == [("global", 14.0)]
            alert = next(doc for doc in hook.received if doc["type"] == "forecast_alert")
            assert alert["budget"] == 20.0 and alert["forecast"] > 20.0
            assert alert["period_label"] == "2026-12"
            assert len(smtp.messages) == 1
            assert smtp.messages[0]["To"] == "boss@example.com"
            assert "2026-12-05" in smtp.messages[0]["Subject"]
            text = smtp.messages[0].get_payload()
            assert "By team:" in text
            assert "global - monthly 2026-12: $14.0000 spent, forecast $" in text
        await store.close()

    run(main())
