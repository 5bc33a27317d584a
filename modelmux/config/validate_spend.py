"""Cross-field checks of ``[[prices]]`` and ``[analytics]`` (docs/spend.md), on raw data:
destinations that lead nowhere, reports without the spend log, a price listed twice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from modelmux.config.layers import ValueOrigins, origin_of
from modelmux.config.problems import KeyPath, Problem

__all__ = ["check_spend"]


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def check_spend(data: Mapping[str, Any], origins: ValueOrigins) -> list[Problem]:
    """Problems and warnings of the spend settings."""
    problems: list[Problem] = []

    def add(message: str, path: KeyPath, warning: bool = False) -> None:
        problems.append(Problem(message, path, origin_of(origins, path), warning))

    seen: dict[str, int] = {}
    prices = data.get("prices")
    for index, entry in enumerate(prices if isinstance(prices, list) else []):
        model = _table(entry).get("model")
        if isinstance(model, str):
            if model in seen:
                add(f"model `{model}` is priced again (also prices[{seen[model]}]); the last "
                    "entry wins", ("prices", index, "model"), warning=True)
            seen[model] = index
    analytics = _table(data.get("analytics"))
    tracking = _table(analytics.get("cost_tracking"))
    reports = _table(analytics.get("usage_reports"))
    hook = tracking.get("alert_webhook")
    if isinstance(hook, str) and urlsplit(hook).scheme not in ("http", "https"):
        add("expected an http:// or https:// URL", ("analytics", "cost_tracking",
                                                    "alert_webhook"))
    destinations = reports.get("destinations")
    if not isinstance(destinations, list) or not destinations:
        return problems
    here: KeyPath = ("analytics", "usage_reports", "destinations")
    if "webhook" in destinations and not (reports.get("webhook") or hook):
        add("\"webhook\" needs [analytics.usage_reports] webhook or [analytics.cost_tracking] "
            "alert_webhook", here)
    if "email" in destinations and not (reports.get("email") or tracking.get("alert_email")):
        add("\"email\" needs [analytics.usage_reports] email or [analytics.cost_tracking] "
            "alert_email addresses", here)
    spend_log = analytics.get("spend_log")
    auth = _table(data.get("auth"))
    if spend_log is False or (spend_log is None and auth.get("mode") != "keys"):
        add("usage reports are made from the spend log, which is off: set [analytics] "
            "spend_log = true", here, warning=True)
    return problems
