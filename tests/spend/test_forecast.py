"""Budget forecasts: the projection (pure, an injected clock) and the once-per-budget-per-period
alert, with a real SQLite store holding keys, teams and the spend log, a loopback webhook
receiver and a loopback SMTP server; two forecasters share the store as two instances would."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from modelmux.config.features import AuthConfig, SmtpConfig
from modelmux.spend import db
from modelmux.spend.account import SpendRow
from modelmux.spend.alerts import Alerter
from modelmux.spend.forecast import Forecaster, forecasts
from modelmux.spend.report import forecast, forecast_lines
from modelmux.spend.schema import SPEND
from modelmux.tenancy.open import open_store
from modelmux.tenancy.records import Key, Team
from tests.fakes.smtp import FakeSMTP
from tests.fakes.webhook import Webhook

NOON = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.timezone.utc).timestamp()


def test_projection_divides_by_the_elapsed_fraction() -> None:
    assert forecast(3.0, "daily", NOON) == pytest.approx(6.0)
    monday = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc).timestamp()
    assert forecast(1.0, "weekly", monday + 3.5 * 86_400) == pytest.approx(2.0)
    assert forecast(5.0, "total", NOON) == 5.0


def test_projection_early_in_a_period_is_at_most_24_times_the_spend() -> None:
    midnight = NOON - 12 * 3600
    assert forecast(1.0, "daily", midnight + 60) == pytest.approx(24.0)
    assert forecast(1.0, "daily", midnight + 3600) == pytest.approx(24.0)
    assert forecast(1.0, "daily", midnight + 2 * 3600) == pytest.approx(12.0)
    assert forecast(0.0, "monthly", midnight) == 0.0


def row(at: float, key: str | None, team: str | None, cost: float) -> SpendRow:
    return SpendRow(time=at, request_id="r", key=key, user=None, team=team, model="m",
                    provider="p", input_tokens=1, output_tokens=1, cached_tokens=0,
                    cache_write_tokens=0, cost_usd=cost, latency_ms=1.0, status=200)


async def _store(tmp_path: Path) -> Any:
    store = open_store(AuthConfig(sqlite_path=str(tmp_path / "m.db")), tmp_path,
                       components=(SPEND,))
    await store.open()
    await store.create_team(Team(id="team_a", name="a", max_budget_usd=100.0,
                                 budget_period="monthly"))
    await store.create_key(Key(id="k_daily", prefix="mm-d", hash="1" * 64, team_id="team_a",
                               max_budget_usd=1.0, budget_period="daily"))
    await store.create_key(Key(id="k_total", prefix="mm-t", hash="2" * 64,
                               max_budget_usd=1.0, budget_period="total"))
    await store.create_key(Key(id="k_gone", prefix="mm-g", hash="3" * 64, max_budget_usd=0.1,
                               budget_period="daily", revoked_at=NOON - 100))
    return store


def test_forecasts_per_scope_and_period(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store(tmp_path)
        await store.run(db.insert, [row(NOON - 3600, "k_daily", "team_a", 0.3),
                                    row(NOON - 86_400, "k_daily", "team_a", 5.0),
                                    row(NOON - 60, "k_total", None, 9.0)])
        items = await forecasts(store.run, store, 50.0, NOON)
        got = {(f["scope"], f["id"]): (f["period"], f["spent"], f["forecast"]) for f in items}
        assert got == {("global", None): ("monthly", 14.3, pytest.approx(14.3 * 31 / 5.5)),
                       ("team", "team_a"): ("monthly", 5.3, pytest.approx(5.3 * 31 / 5.5)),
                       ("key", "k_daily"): ("daily", 0.3, pytest.approx(0.6))}
        assert items[0]["scope"] == "global"  # the most over its budget first
        mine = await forecasts(store.run, store, 50.0, NOON, team="team_a")
        assert [f["scope"] for f in mine] == ["key", "team"]  # 60 % before 30 %
        assert "key k_daily daily 2026-12-06: $0.3000 spent, forecast $0.6000 of $1" \
            in forecast_lines(items)
        await store.close()

    run(main())


def test_one_alert_per_budget_per_period_across_instances(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store(tmp_path)
        now = [NOON]
        async with Webhook() as hook, FakeSMTP() as smtp:
            alerter = Alerter(webhook=hook.origin + "/alerts", emails=["ops@example.com"],
                              smtp=SmtpConfig(port=smtp.port))
            instances = [Forecaster(store.run, store, alerter, global_budget=None,
                                    webhook=hook.origin + "/alerts",
                                    emails=["ops@example.com"], interval=60.0,
                                    clock=lambda: now[0]) for _ in range(2)]
            await store.run(db.insert, [row(NOON - 60, "k_daily", "team_a", 0.4)])
            assert [await f.tick() for f in instances] == [[], []]  # forecast 0.8 of 1
            await store.run(db.insert, [row(NOON - 30, "k_daily", "team_a", 0.2)])
            sent = [await f.tick() for f in instances + instances]
            assert [len(s) for s in sent] == [1, 0, 0, 0]
            now[0] = NOON + 3600  # later the same day: still claimed
            assert [await f.tick() for f in instances] == [[], []]
            now[0] = NOON + 86_400  # the next day: spend starts over
            await store.run(db.insert, [row(now[0] - 60, "k_daily", "team_a", 0.7)])
            assert [len(await f.tick()) for f in instances] == [1, 0]
            await alerter.aclose()
            assert [(d["type"], d["scope"], d["id"], d["period_label"])
                    for d in hook.received] == [
                ("forecast_alert", "key", "k_daily", "2026-12-06"),
                ("forecast_alert", "key", "k_daily", "2026-12-07")]
            first = hook.received[0]
            assert (first["spent"], first["forecast"], first["budget"], first["period"]) == (
                0.6, pytest.approx(1.2), 1.0, "daily")
            assert len(smtp.messages) == 2
            assert "key k_daily daily spend is forecast" in smtp.messages[0]["Subject"]
        await store.close()

    run(main())
