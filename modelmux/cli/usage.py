"""``modelmux usage``: spend log totals, a provider comparison and the month's forecast.

It reads the spend log from the store the configuration names (the same rows as
``GET /admin/usage``), so it works with the server stopped too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from modelmux.cli.common import add_config_option, load_or_report
from modelmux.config.schema import Config
from modelmux.spend import db
from modelmux.spend.forecast import forecasts
from modelmux.spend.periods import period_bounds
from modelmux.spend.prices import PriceTable
from modelmux.spend.report import (as_csv, as_table, compare, forecast, forecast_lines,
                                   parse_time)
from modelmux.spend.service import SpendStore

EPILOG = """EXAMPLES:
  modelmux usage                          this month, by model
  modelmux usage --by team --since 7d
  modelmux usage --by key --since 2026-12-01 --until 2026-12-08 --format csv
  modelmux usage --compare --since 30d    the same tokens priced at every deployment
  modelmux usage --forecast               this month so far, and each budget's forecast
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "usage", help="spend log totals by key, team, user, model or provider", epilog=EPILOG,
        description="Totals (requests, tokens, USD) from the spend log between --since and "
                    "--until (default: this UTC month). Times: 7d, 24h, an ISO date, or Unix "
                    "seconds.")
    parser.add_argument("--by", choices=sorted(db.GROUPS), default="model",
                        help="what to group by (default: model)")
    parser.add_argument("--since", help="start (default: the start of this UTC month)")
    parser.add_argument("--until", help="end, exclusive (default: now)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--compare", action="store_true",
                        help="price each model's tokens at every deployment that serves it")
    parser.add_argument("--forecast", action="store_true",
                        help="this month's spend and its projection to the month's end, "
                             "and each budget's projection to its period's end")
    add_config_option(parser)


def _alternatives(config: Config) -> dict[str, list[tuple[str, str]]]:
    """Upstream model → every (deployment id, upstream model) serving the same public names."""
    from modelmux.routing.models import ModelIndex

    class Ref:
        def __init__(self, name: str, models: list[str]) -> None:
            self.name, self.models = name, models

    index = ModelIndex([Ref(p.name, list(p.models)) for p in config.provider],
                       config.model_aliases(), config.routing.group)
    groups = [*index.groups.values(),
              *(g for p in config.provider for m in p.models if (g := index.group_named(m)))]
    out: dict[str, list[tuple[str, str]]] = {}
    for group in groups:
        for spec in group.deployments:
            mine = out.setdefault(spec.model, [])
            for other in group.deployments:
                if (other.id, other.model) not in mine:
                    mine.append((other.id, other.model))
    return out


async def _query(config: Config, by: str, since: float, until: float) -> list[dict[str, Any]]:
    store = SpendStore(config)
    try:
        return list(await store.run(db.usage, by, since, until))
    finally:
        await store.aclose()


async def _forecasts(config: Config, now: float) -> list[dict[str, Any]]:
    store = SpendStore(config)
    try:
        return await forecasts(store.run, await store.opened(),
                               config.analytics.cost_tracking.monthly_budget, now)
    finally:
        await store.aclose()


def _emit(rows: list[dict[str, Any]], fmt: str, by: str, extra: dict[str, Any]) -> None:
    if fmt == "json":
        print(json.dumps({**extra, "data": rows}, indent=2))
    elif fmt == "csv":
        sys.stdout.write(as_csv(rows) if rows and "group" in rows[0] else _plain_csv(rows))
    else:
        sys.stdout.write(as_table(rows, by) if not rows or "group" in rows[0]
                         else _plain_table(rows))


def _plain_csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    return "\n".join([",".join(keys), *(",".join("" if r[k] is None else str(r[k])
                                                   for k in keys) for r in rows)]) + "\n"


def _plain_table(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = [[k.upper() for k in keys]] + [["-" if r[k] is None else str(r[k]) for k in keys]
                                           for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(keys))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines) + "\n"


def run(ns: argparse.Namespace) -> int:
    loaded = load_or_report(ns.config, quiet=True)
    if loaded is None:
        return 2
    config = loaded.config
    now = time.time()
    try:
        since = parse_time(ns.since, now) if ns.since else period_bounds("monthly", now)[0]
        until = parse_time(ns.until, now) if ns.until else now + 1
    except ValueError as exc:
        print(f"modelmux: {exc}", file=sys.stderr)
        return 2
    by = "model" if ns.compare else ns.by
    rows = asyncio.run(_query(config, by, since, until))
    extra: dict[str, Any] = {"group_by": by, "since": since, "until": until}
    if ns.compare:
        rows = compare(rows, _alternatives(config), PriceTable(config.prices))
        extra = {"since": since, "until": until}
    if ns.forecast:
        start = period_bounds("monthly", now)[0]
        month = asyncio.run(_query(config, "model", start, now + 1))
        spent = sum(r["cost_usd"] for r in month)
        extra["month_to_date_usd"] = round(spent, 6)
        extra["forecast_usd"] = round(forecast(spent, "monthly", now), 6)
        budget = config.analytics.cost_tracking.monthly_budget
        extra["monthly_budget"] = budget
        extra["forecasts"] = asyncio.run(_forecasts(config, now))
    _emit(rows, ns.format, by, extra)
    if ns.forecast and ns.format == "table":
        budget_text = "" if extra["monthly_budget"] is None else \
            f" of a ${extra['monthly_budget']:g} budget"
        print(f"this month: ${extra['month_to_date_usd']:.4f} so far; forecast "
              f"${extra['forecast_usd']:.4f} by the month's end{budget_text}")
        for line in forecast_lines(extra["forecasts"]):
            print(line)
    return 0
