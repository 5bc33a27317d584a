"""Budget forecasts through a real ``modelmux serve`` with ``[auth] mode = "keys"``: a key with
a daily budget, traffic through the official openai SDK that takes its forecast past the budget
(not its spend), and a loopback webhook receiver that gets exactly one forecast alert for it;
``GET /admin/usage?forecast=true`` and ``modelmux usage --forecast`` show the same forecast."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from modelmux.spend.report import MIN_FRACTION
from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess, modelmux_command, priced_upstream
from tests.e2e.test_spend_auth_serve import ANSWER, COST, MASTER, ask, call
from tests.e2e.threaded import threaded
from tests.fakes.openai import FakeOpenAI
from tests.fakes.webhook import Webhook

REQUESTS = 3


def budget_below_forecast() -> float:
    """A daily budget that ``REQUESTS`` requests' forecast passes now and one request fewer's
    does not, above their spend: midway, the forecast taken as the server takes it (spend over
    the elapsed fraction of the UTC day, at least ``MIN_FRACTION``). The margin is a minute or
    more of clock time until the day's last two minutes, when the spend would reset mid-test:
    skipped then."""
    now = dt.datetime.now(dt.timezone.utc)
    elapsed = now.hour * 3600 + now.minute * 60 + now.second
    if elapsed > 86_400 - 120:
        pytest.skip("the UTC day ends within two minutes: the daily spend resets mid-test")
    fraction = max(elapsed / 86_400, MIN_FRACTION)
    low = max(REQUESTS, (REQUESTS - 1) / fraction) * COST
    return (low + REQUESTS * COST / fraction) / 2


def test_one_forecast_alert_for_a_key_whose_daily_forecast_passes_its_budget(
        tmp_path: Path) -> None:
    db = tmp_path / "mm.db"
    with threaded(FakeOpenAI(answer=ANSWER)) as upstream, threaded(Webhook()) as hook:
        path = tmp_path / "config.toml"
        path.write_text(LOOPBACK_SERVER + f"""
[auth]
mode = "keys"
master_key = "{MASTER}"
sqlite_path = "{db}"

{priced_upstream(upstream.origin)}
[analytics.cost_tracking]
alert_at = 1.0
alert_webhook = "{hook.origin}/hook"
forecast_interval = 0.1
""")
        proc = ServeProcess(["serve", "--config", str(path)], home=tmp_path)
        try:
            budget = budget_below_forecast()
            _, key = call(proc, "POST", "/admin/keys", {"name": "k", "max_budget_usd": budget,
                                                        "budget_period": "daily"})
            _, calm = call(proc, "POST", "/admin/keys", {"name": "calm",
                                                         "max_budget_usd": 100.0,
                                                         "budget_period": "daily"})
            n = REQUESTS
            assert [ask(proc, key["key"]) for _ in range(n)] == [200] * n
            assert ask(proc, calm["key"]) == 200
            assert proc.wait_for_log(f"key {key['id']} daily spend is forecast")

            _, later = call(proc, "POST", "/admin/keys", {"name": "later",
                                                          "max_budget_usd": COST / 100,
                                                          "budget_period": "daily"})
            ask(proc, later["key"])  # its forecast passes too: an alert from a later round
            assert proc.wait_for_log(f"key {later['id']} daily spend is forecast")

            status, usage = call(proc, "GET", "/admin/usage?group_by=key&forecast=true")
            assert status == 200
            served = {f["id"]: f for f in usage["forecasts"]}
            status, bad = call(proc, "GET", "/admin/usage?forecast=maybe")
            assert status == 400 and bad["error"]["param"] == "forecast"
        finally:
            assert proc.stop() == 0

    alerts = [doc for doc in hook.received if doc["type"] == "forecast_alert"]
    assert [a["id"] for a in alerts] == [key["id"], later["id"]]  # once each, none for calm
    first = alerts[0]
    assert (first["scope"], first["budget"], first["period"]) == ("key", budget, "daily")
    assert first["spent"] == pytest.approx(n * COST) and first["spent"] < budget
    assert first["forecast"] > budget
    assert served[key["id"]]["spent"] == pytest.approx(n * COST)
    assert served[calm["id"]]["forecast"] < 100.0

    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM spend_notices")]
    assert sorted(names) == sorted(f"forecast:key:{k['id']}:{first['period_label']}"
                                   for k in (key, later))

    cli = subprocess.run([*modelmux_command(), "usage", "--forecast", "--format", "json",
                          "--config", str(path)], capture_output=True, text=True, timeout=60,
                         env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert cli.returncode == 0, cli.stderr
    by_cli = {f["id"]: f for f in json.loads(cli.stdout)["forecasts"]}
    assert by_cli[key["id"]]["spent"] == served[key["id"]]["spent"]
    assert set(by_cli) == set(served)
