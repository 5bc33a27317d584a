"""Budgets per key, user, team and global: refused once spent, per period, one alert per
threshold; and the alert sender's retries against a real loopback webhook and SMTP server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelmux.config.features import SmtpConfig
from modelmux.errors import BudgetExceeded
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.context import RequestContext
from modelmux.schemas.openai_chat import request_decoder
from modelmux.spend.account import SpendRow
from modelmux.spend.alerts import Alerter
from modelmux.spend.budget import Budget, BudgetStage, Crossing
from modelmux.spend.counters import MemoryCounters
from modelmux.spend.periods import period_bounds, period_label
from modelmux.tenancy.records import Identity, Key, Team
from tests.fakes.smtp import FakeSMTP
from tests.fakes.webhook import Webhook

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
NOW = dt.datetime(2026, 12, 6, 12, tzinfo=dt.timezone.utc).timestamp()  # a Sunday


def ctx(identity: Identity | None) -> RequestContext:
    context = RequestContext("openai.chat", request_decoder.decode(BODY), BODY, [], "r",
                             RequestRecord("r", "/v1/chat/completions"))
    context.identity = identity
    return context


def spend(cost: float) -> SpendRow:
    return SpendRow(time=NOW, request_id="r", key=None, user=None, team=None, model="m",
                    provider="p", input_tokens=1, output_tokens=1, cached_tokens=0,
                    cache_write_tokens=0, cost_usd=cost, latency_ms=1.0, status=200)


class Recorded:
    def __init__(self) -> None:
        self.fired: list[Crossing] = []

    def fire(self, crossing: Crossing) -> None:
        self.fired.append(crossing)


def identity() -> Identity:
    team = Team(id="team-a", name="a", max_budget_usd=1.5, budget_period="monthly")
    key = Key(id="key-1", prefix="mm_", hash="h", team_id="team-a", max_budget_usd=1.0,
              budget_period="daily")
    return Identity(kind="key", label="mm_", role="user", key=key, team=team)


def test_periods_are_utc_calendar_units() -> None:
    assert period_label("daily", NOW) == "2026-12-06"
    assert period_label("weekly", NOW) == "2026-W49"
    assert period_label("monthly", NOW) == "2026-12"
    start, end = period_bounds("weekly", NOW)
    assert dt.datetime.fromtimestamp(start, dt.timezone.utc).weekday() == 0
    assert end - start == 7 * 86_400
    assert period_bounds("total", NOW) == (0.0, float("inf"))


def test_a_key_budget_stops_the_key_and_a_team_budget_the_team(run: Any) -> None:
    clock = [NOW]
    alerts = Recorded()
    stage = BudgetStage(MemoryCounters(), global_limit=None, alert_at=0.8, alerts=alerts,
                        clock=lambda: clock[0])

    async def main() -> None:
        first = ctx(identity())
        await stage.on_request(first)
        stage.count(first, spend(0.9))  # key at 90 %: past its 80 % alert
        stage.count(first, spend(0.2))  # key over its 1.0: past 100 %
        with pytest.raises(BudgetExceeded) as refused:
            await stage.on_request(ctx(identity()))
        assert refused.value.status == 429 and refused.value.code == "budget_exceeded"
        assert refused.value.type == "insufficient_quota"
        assert "key key-1" in refused.value.message
        clock[0] = NOW + 86_400  # the key's daily budget starts again; the team's goes on
        again = ctx(identity())
        await stage.on_request(again)
        stage.count(again, spend(0.5))  # key 0.5 of 1.0 today; team 1.6 of 1.5 this month
        with pytest.raises(BudgetExceeded, match="team team-a"):
            await stage.on_request(ctx(identity()))
        await stage.on_request(ctx(None))  # no identity, no global budget: admitted

    run(main())
    assert [(c.budget.scope, c.threshold) for c in alerts.fired] == [
        ("key", 0.8), ("key", 1.0), ("team", 0.8), ("team", 1.0)]


def test_global_budget_applies_to_everyone(run: Any) -> None:
    stage = BudgetStage(MemoryCounters(), global_limit=2.0, alert_at=0.5, clock=lambda: NOW)

    async def main() -> None:
        first = ctx(None)
        await stage.on_request(first)
        stage.count(first, spend(2.0))
        with pytest.raises(BudgetExceeded, match="global budget of \\$2"):
            await stage.on_request(ctx(identity()))

    run(main())


def test_alerts_are_retried_with_backoff_to_the_webhook_and_mailed(run: Any) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> None:
        async with Webhook(fail_first=2) as hook, FakeSMTP() as smtp:
            alerter = Alerter(webhook=hook.origin + "/hook", emails=["a@example.com"],
                              smtp=SmtpConfig(port=smtp.port), sleep=no_wait)
            alerter.fire(Crossing(Budget("team", "team-a", 10.0, "monthly"), 8.5, 0.8,
                                  "2026-12"))
            await alerter.aclose()
            assert hook.attempts == 3 and len(hook.received) == 1
            assert hook.received[0] == {"type": "budget_alert", "scope": "team",
                                        "id": "team-a", "spent": 8.5, "budget": 10.0,
                                        "period": "monthly", "period_label": "2026-12",
                                        "threshold": 0.8}
            assert len(smtp.messages) == 1 and "team team-a" in smtp.messages[0]["Subject"]

    run(main())
    assert waits == [0.5, 1.0]


def test_in_process_counters_start_from_the_spend_log_after_a_restart(
        run: Any, tmp_path: Any) -> None:
    from modelmux.config.features import (AnalyticsConfig, AuthConfig, CostTrackingConfig)
    from modelmux.config.schema import Config
    from modelmux.spend.service import Spend

    config = Config(auth=AuthConfig(sqlite_path=str(tmp_path / "m.db")),
                    analytics=AnalyticsConfig(spend_log=True,
                                              cost_tracking=CostTrackingConfig(
                                                  monthly_budget=1.0)))

    async def main() -> None:
        before = Spend(config)
        assert before.budgets is not None and before.log is not None
        first = ctx(None)
        await before.budgets.on_request(first)
        row = spend(1.0)
        before.log.add(msgspec_replace(row))
        before.budgets.count(first, row)
        await before.aclose()  # a graceful stop: the row is written

        after = Spend(config)  # a restart: in-process counters are empty
        assert after.budgets is not None
        with pytest.raises(BudgetExceeded, match="global budget"):
            await after.budgets.on_request(ctx(None))
        await after.aclose()

    run(main())


def msgspec_replace(row: SpendRow) -> SpendRow:
    import time

    import msgspec

    return msgspec.structs.replace(row, time=time.time())


def test_a_reload_keeps_the_in_process_counters(run: Any) -> None:
    from modelmux.config.features import AnalyticsConfig, CostTrackingConfig
    from modelmux.config.schema import Config
    from modelmux.spend.service import Spend

    config = Config(analytics=AnalyticsConfig(
        cost_tracking=CostTrackingConfig(monthly_budget=1.0)))

    async def main() -> None:
        old, new = Spend(config), Spend(config)
        assert old.budgets is not None and new.budgets is not None
        first = ctx(None)
        await old.budgets.on_request(first)
        old.budgets.count(first, spend(1.0))
        new.adopt(old)
        with pytest.raises(BudgetExceeded):
            await new.budgets.on_request(ctx(None))

    run(main())
