"""``modelmux prices`` and ``modelmux usage`` as real processes, over a spend log written
through the real SQLite store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from modelmux.config.features import AuthConfig
from modelmux.spend import db
from modelmux.spend.account import SpendRow
from modelmux.spend.schema import SPEND
from modelmux.tenancy.open import open_store
from tests.cli.helpers import run

CONFIG = """
[auth]
sqlite_path = "{db}"

[[provider]]
name = "a"
type = "mock"
models = ["gpt-4o"]

[[provider]]
name = "b"
type = "mock"
models = []

[[routing.group]]
name = "chat"
deployments = [{{ provider = "a", model = "gpt-4o" }}, {{ provider = "b", model = "cheap" }}]

[[prices]]
model = "cheap"
input_per_mtok = 0.5
output_per_mtok = 1.0

[analytics.cost_tracking]
monthly_budget = 100
"""


def write_log(path: Path, rows: list[SpendRow]) -> None:
    async def main() -> None:
        store = open_store(AuthConfig(sqlite_path=str(path)), path.parent, components=(SPEND,))
        await store.open()
        await store.run(db.insert, rows)
        await store.close()

    asyncio.run(main())


def row(team: str | None, cost: float, at: float) -> SpendRow:
    return SpendRow(time=at, request_id="r", key="k", user=None, team=team, model="gpt-4o",
                    provider="a", input_tokens=1_000_000, output_tokens=100_000,
                    cached_tokens=0, cache_write_tokens=0, cost_usd=cost, latency_ms=5.0,
                    status=200)


def test_prices_shows_what_applies(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(db=tmp_path / "m.db"))
    shown = run(tmp_path, "prices", "claude-sonnet-4@20250514")
    assert shown.returncode == 0, shown.stderr
    assert "priced as claude-sonnet-4" in shown.stdout and "as of" in shown.stdout
    answer = run(tmp_path, "prices", "cheap", "--json", "--config", str(config))
    data = json.loads(answer.stdout)["data"]
    assert data == [{"model": "cheap", "input_per_mtok": 0.5, "output_per_mtok": 1.0,
                     "cached_input_per_mtok": None, "cache_write_per_mtok": None,
                     "source": "config [[prices]]"}]
    missing = run(tmp_path, "prices", "no-such-model")
    assert missing.returncode == 1 and "no price for model 'no-such-model'" in missing.stderr


def test_usage_by_team_compare_and_forecast(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(db=path))
    now = time.time()
    write_log(path, [row("red", 3.5, now - 60), row("red", 3.5, now - 120),
                     row(None, 3.5, now - 180), row("red", 9.9, now - 40 * 86_400)])
    table = run(tmp_path, "usage", "--by", "team", "--since", "7d", "--config", str(config))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[1].split() == ["red", "2", "2000000", "200000", "7.000000"]
    assert lines[-1].split() == ["TOTAL", "3", "3000000", "300000", "10.500000"]
    as_csv = run(tmp_path, "usage", "--by", "team", "--since", "7d", "--format", "csv",
                 "--config", str(config))
    assert as_csv.stdout.splitlines()[:2] == [
        "group,requests,input_tokens,output_tokens,cost_usd", "red,2,2000000,200000,7.0"]

    compared = run(tmp_path, "usage", "--compare", "--since", "7d", "--format", "json",
                   "--config", str(config))
    rows = json.loads(compared.stdout)["data"]
    by_deployment = {r["deployment"]: r["cost_usd"] for r in rows}
    assert by_deployment == pytest.approx({"a/gpt-4o": 3 * (2.5 + 1.0),
                                           "b/cheap": 3 * (0.5 + 0.1)})

    forecast = run(tmp_path, "usage", "--forecast", "--format", "json", "--config",
                   str(config))
    doc = json.loads(forecast.stdout)
    assert doc["monthly_budget"] == 100
    assert doc["forecast_usd"] >= doc["month_to_date_usd"] > 0
    assert [(f["scope"], f["budget"], f["forecast"]) for f in doc["forecasts"]] == [
        ("global", 100, doc["forecast_usd"])]
    table = run(tmp_path, "usage", "--forecast", "--config", str(config))
    assert "global - monthly " in table.stdout.splitlines()[-1]

    bad = run(tmp_path, "usage", "--since", "last tuesday", "--config", str(config))
    assert bad.returncode == 2 and "is not a time" in bad.stderr


def test_config_validate_names_spend_settings_that_lead_nowhere(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("""
[[provider]]
name = "a"
type = "mock"
models = ["m"]

[[prices]]
model = "m"
input_per_mtok = 1
output_per_mtok = 1

[[prices]]
model = "m"
input_per_mtok = 2
output_per_mtok = 2

[analytics.cost_tracking]
alert_webhook = "ftp://hooks.example.com"

[analytics.usage_reports]
destinations = ["email"]
""")
    checked = run(tmp_path, "config", "validate", str(config))
    assert checked.returncode == 2
    text = checked.stderr + checked.stdout
    assert "analytics.cost_tracking.alert_webhook" in text and "http://" in text
    assert '"email" needs' in text
    assert "priced again" in text and "spend log, which is off" in text
