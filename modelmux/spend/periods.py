"""Budget periods in UTC: where the current one started, when it ends, and its label. Pure."""

from __future__ import annotations

import datetime as dt

__all__ = ["Labels", "period_bounds", "period_label"]

_UTC = dt.timezone.utc


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """(start, end) in Unix seconds of the ``period`` ("daily", "weekly": ISO weeks from
    Monday, "monthly", "total") that holds ``now``; "total" is (0, inf).

    Raises:
        ValueError: an unknown period.
    """
    if period == "total":
        return 0.0, float("inf")
    day = dt.datetime.fromtimestamp(now, _UTC).replace(hour=0, minute=0, second=0,
                                                        microsecond=0)
    if period == "daily":
        start, end = day, day + dt.timedelta(days=1)
    elif period == "weekly":
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=7)
    elif period == "monthly":
        start = day.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown budget period {period!r}")
    return start.timestamp(), end.timestamp()


def period_label(period: str, now: float) -> str:
    """A name for the period holding ``now``: ``2026-12-06``, ``2026-W49``, ``2026-12``,
    ``total``; keys of counters and alerts carry it, so a new period starts from zero."""
    if period == "total":
        return "total"
    at = dt.datetime.fromtimestamp(now, _UTC)
    if period == "daily":
        return at.strftime("%Y-%m-%d")
    if period == "weekly":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "monthly":
        return at.strftime("%Y-%m")
    raise ValueError(f"unknown budget period {period!r}")


class Labels:
    """``period_label`` remembered while its period lasts: per request it is one comparison,
    not a calendar computation."""

    def __init__(self) -> None:
        self._current: dict[str, tuple[float, float, str]] = {}

    def __call__(self, period: str, now: float) -> str:
        held = self._current.get(period)
        if held is not None and held[0] <= now < held[1]:
            return held[2]
        start, end = period_bounds(period, now)
        label = period_label(period, now)
        self._current[period] = (start, end, label)
        return label
