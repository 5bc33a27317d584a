"""Usage reports, pure: time bounds from text, rows as JSON/CSV/table, forecasts, comparison.

Rows come from ``spend.db.usage``: {"group", "requests", "input_tokens", "output_tokens",
"cost_usd", "unpriced_requests"}. Nothing here does I/O.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable
from typing import Any

from modelmux.spend.cost import cost_usd
from modelmux.spend.periods import period_bounds
from modelmux.spend.prices import PriceTable

__all__ = ["FIELDS", "as_csv", "as_table", "compare", "forecast", "forecast_lines", "parse_time"]

FIELDS = ("group", "requests", "input_tokens", "output_tokens", "cost_usd")
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_time(text: str, now: float) -> float:
    """Unix seconds for ``text``: ``7d``/``24h``/``30m`` ago, an ISO date or date-time (UTC
    unless it names a zone), ``now``, or Unix seconds.

    Raises:
        ValueError: none of those.
    """
    text = text.strip()
    if text == "now":
        return now
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return now - float(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 7d, 24h, an ISO date such as "
                         "2026-12-01, or Unix seconds") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return at.timestamp()


def as_csv(rows: Iterable[dict[str, Any]]) -> str:
    """The rows as CSV with a header line (``FIELDS``)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "group": "" if row["group"] is None else row["group"]})
    return out.getvalue()


def as_table(rows: list[dict[str, Any]], by: str) -> str:
    """The rows as an aligned text table, with a total line."""
    header = (by.upper(), "REQUESTS", "INPUT", "OUTPUT", "COST USD")
    lines = [header] + [("-" if r["group"] is None else str(r["group"]), str(r["requests"]),
                         str(r["input_tokens"]), str(r["output_tokens"]),
                         f"{r['cost_usd']:.6f}") for r in rows]
    lines.append(("TOTAL", str(sum(r["requests"] for r in rows)),
                  str(sum(r["input_tokens"] for r in rows)),
                  str(sum(r["output_tokens"] for r in rows)),
                  f"{sum(r['cost_usd'] for r in rows):.6f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths)))
                     for line in lines) + "\n"


MIN_FRACTION = 1 / 24
"""Early in a period the elapsed fraction counts as at least this, so a forecast is at most
24 times the spend so far (the first minutes' rate says little about a whole period)."""


def forecast(spent: float, period: str, now: float) -> float:
    """The spend at the end of ``period`` (the one holding ``now``) if it goes on at the rate
    so far: ``spent`` / the elapsed fraction of the period (at least ``MIN_FRACTION``);
    ``spent`` itself for "total"."""
    start, end = period_bounds(period, now)
    if end == float("inf"):
        return spent
    fraction = max((now - start) / (end - start), MIN_FRACTION)
    return spent / fraction


def forecast_lines(items: list[dict[str, Any]]) -> list[str]:
    """One line per budget forecast, as reports and ``modelmux usage --forecast`` show them."""
    return [f"{item['scope']} {item['id'] or '-'} {item['period']} {item['period_label']}: "
            f"${item['spent']:.4f} spent, forecast ${item['forecast']:.4f} of "
            f"${item['budget']:g}{' (over)' if item['forecast'] > item['budget'] else ''}"
            for item in items]


def compare(rows: Iterable[dict[str, Any]], deployments: dict[str, list[tuple[str, str]]],
            prices: PriceTable) -> list[dict[str, Any]]:
    """Each model's logged tokens priced at every deployment that serves it.

    ``rows`` are grouped by model (the upstream model); ``deployments`` maps an upstream model
    to the (deployment id, upstream model) pairs that could have served the same requests.
    """
    out = []
    for row in rows:
        model = row["group"]
        for ident, upstream in deployments.get(model, [(f"-/{model}", model)]):
            price = prices.lookup(upstream)
            cost = (None if price is None else
                    round(cost_usd(price, row["input_tokens"], row["output_tokens"]), 10))
            out.append({"model": model, "deployment": ident, "input_tokens": row["input_tokens"],
                        "output_tokens": row["output_tokens"], "cost_usd": cost,
                        "logged_cost_usd": row["cost_usd"]})
    return out
