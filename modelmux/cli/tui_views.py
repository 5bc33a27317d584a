"""What ``modelmux tui`` shows, as plain data: figure lines, deployment rows, recent errors.

Pure (no Textual), so both the app and its tests use it without a terminal.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

MAX_ERRORS = 200
SPARK_POINTS = 60


class Recent:
    """What the views keep between snapshots: a short rate history and the recent errors."""

    def __init__(self) -> None:
        self.rates: deque[float] = deque(maxlen=SPARK_POINTS)
        self.errors: deque[tuple[str, str, int]] = deque(maxlen=MAX_ERRORS)

    def add(self, snap: dict[str, Any], now: float | None = None) -> None:
        """Remember ``snap``'s rate and any errors it reports."""
        self.rates.append(float(snap.get("requests_per_s") or 0.0))
        stamp = time.strftime("%H:%M:%S", time.localtime(now))
        for status, count in (snap.get("errors") or {}).items():
            self.errors.appendleft((stamp, f"HTTP {status}", int(count)))
        for code, count in (snap.get("upstream_errors") or {}).items():
            self.errors.appendleft((stamp, f"upstream {code}", int(count)))


def _num(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _ratio(cache: dict[str, Any] | None) -> str:
    if not cache:
        return "no cache"
    ratio = cache.get("hit_ratio")
    return "–" if ratio is None else f"{ratio * 100:.1f} %"


def overview_lines(snap: dict[str, Any]) -> list[str]:
    """The overview's figures as lines of plain text."""
    latency, overhead = snap.get("latency_ms") or {}, snap.get("overhead_ms") or {}
    tokens = snap.get("tokens_per_s") or {}
    cache = snap.get("cache")
    return [
        f"requests      {snap.get('requests_total', 0)}",
        f"requests/s    {_num(snap.get('requests_per_s'), 2)}",
        f"in flight     {snap.get('in_flight', 0)}",
        f"latency ms    p50 {_num(latency.get('p50'))}   p99 {_num(latency.get('p99'))}",
        f"overhead ms   p50 {_num(overhead.get('p50'), 2)}   p99 {_num(overhead.get('p99'), 2)}",
        f"tokens/s      in {_num(tokens.get('input'))}   out {_num(tokens.get('output'))}",
        f"cost USD/h    {_num(snap.get('cost_per_hour_usd'), 4)}",
        f"cache hits    {_ratio(cache)}",
    ]


def deployment_rows(snap: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per deployment: id, breaker, in flight, TTFT, rpm, tpm."""
    rows: list[tuple[str, ...]] = []
    for ident, view in sorted((snap.get("deployments") or {}).items()):
        breaker = view.get("breaker") or {}
        state = str(breaker.get("state", "?")) + (" (held)" if breaker.get("pinned") else "")
        limits = view.get("limits") or {}
        rows.append((str(ident), state, str(view.get("in_flight", 0)), _num(view.get("ewma_ttft_ms")),
                     str(limits.get("rpm") or "–"), str(limits.get("tpm") or "–")))
    return rows


def spend_rows(rows: list[dict[str, Any]], top: int = 10) -> list[tuple[str, ...]]:
    """The ``top`` most expensive groups of a ``/admin/usage`` answer (it sorts them)."""
    return [(str(row.get("group") or "–"), str(row.get("requests", 0)),
             f"{float(row.get('cost_usd') or 0):.4f}") for row in rows[:top]]
