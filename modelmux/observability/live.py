"""The live snapshot the admin event stream publishes: per-interval figures from the metrics.

``LiveView`` reads ``GatewayMetrics``' cumulative families at each ``sample(now, ...)`` and
returns what changed since the previous sample as rates and percentiles. It adds no work to the
request path (it only reads what the request path already counts) and does no I/O; the caller
supplies the clock, so tests need none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelmux.observability.gateway import GatewayMetrics
from modelmux.observability.metrics import Histogram

WATCHING = ("/admin/", "/dashboard")


def percentile(bounds: tuple[float, ...], counts: list[int], q: float) -> float | None:
    """The ``q`` quantile (0-1) of per-bucket ``counts``, interpolated inside its bucket.

    Values past the last bound read as that bound (the histogram knows no more). None when
    ``counts`` is all zero.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    running = 0
    for index, count in enumerate(counts):
        if count and running + count >= rank:
            if index >= len(bounds):
                return bounds[-1]
            lower = bounds[index - 1] if index else 0.0
            return lower + (bounds[index] - lower) * max(0.0, rank - running) / count
        running += count
    return bounds[-1]


def _diff(now: list[int], before: list[int] | None) -> list[int]:
    if before is None or len(before) != len(now):
        return now
    return [max(0, a - b) for a, b in zip(now, before, strict=True)]


@dataclass(slots=True)
class _Totals:
    at: float
    requests: dict[str, float] = field(default_factory=dict)  # by status
    upstream_errors: dict[str, float] = field(default_factory=dict)  # by code
    tokens: dict[str, float] = field(default_factory=dict)  # input / output
    duration: list[int] = field(default_factory=list)
    overhead: list[int] = field(default_factory=list)
    cost: float = 0.0
    cache: dict[str, float] = field(default_factory=dict)  # hit / miss / bypass


def _sum_by(items: list[tuple[tuple[str, ...], float]], index: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in items:
        out[labels[index]] = out.get(labels[index], 0) + value
    return out


def _traffic(items: list[tuple[tuple[str, ...], float]]) -> dict[str, float]:
    """Requests by status, leaving out the admin API and dashboard (watching is not traffic)."""
    return _sum_by([(labels, value) for labels, value in items
                    if not labels[0].startswith(WATCHING)], 3)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


class LiveView:
    """Per-interval figures of one process's ``GatewayMetrics``."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self._last: _Totals | None = None

    def reset(self) -> None:
        """Forget the previous sample: the next one starts a fresh interval (after idling)."""
        self._last = None

    def _totals(self, now: float) -> _Totals:
        m = self.metrics
        return _Totals(now, _traffic(m.requests.items()), _sum_by(m.errors.items(), 1),
                       _sum_by(m.tokens.items(), 2), m.server_duration.merged_counts(),
                       m.overhead.merged_counts(), sum(v for _, v in m.cost.items()),
                       _sum_by(m.cache_requests.items(), 0))

    def sample(self, now: float, deployments: dict[str, dict[str, object]],
               extra: dict[str, Any] | None = None, watchers: int = 0) -> dict[str, Any]:
        """The figures since the previous sample (the first sample has rates of None and
        percentiles since start). Requests to the admin API and dashboard are left out.

        ``deployments`` is ``Router.snapshot()``; ``watchers`` how many of the requests in
        flight are event streams (left out too); ``extra`` adds fields (cache, cost) of
        features that exist.
        """
        totals, last = self._totals(now), self._last
        self._last = totals
        elapsed = now - last.at if last is not None else 0.0
        out: dict[str, Any] = {"at": now, "interval": round(elapsed, 3) if last else None,
                               "in_flight": max(0, int(self.metrics.in_flight.value()) - watchers)}
        out["requests_total"] = int(sum(totals.requests.values()))
        if last is None or elapsed <= 0:
            out.update(requests_per_s=None, errors={}, upstream_errors={}, tokens_per_s=None,
                       cost_per_hour_usd=None, cache=_cache(totals.cache, {}),
                       latency_ms=_quantiles(self.metrics.server_duration, totals.duration),
                       overhead_ms=_quantiles(self.metrics.overhead, totals.overhead))
        else:
            done = {k: v - last.requests.get(k, 0) for k, v in totals.requests.items()}
            out["requests_per_s"] = round(sum(done.values()) / elapsed, 3)
            out["errors"] = {k: int(v) for k, v in sorted(done.items())
                             if v > 0 and (k.isdigit() and int(k) >= 400)}
            out["upstream_errors"] = {k: int(v - last.upstream_errors.get(k, 0))
                                      for k, v in sorted(totals.upstream_errors.items())
                                      if v > last.upstream_errors.get(k, 0)}
            out["tokens_per_s"] = {k: round((totals.tokens.get(k, 0) - last.tokens.get(k, 0))
                                            / elapsed, 3) for k in ("input", "output")}
            out["cost_per_hour_usd"] = round((totals.cost - last.cost) / elapsed * 3600, 6)
            out["cache"] = _cache(totals.cache, last.cache)
            out["latency_ms"] = _quantiles(self.metrics.server_duration,
                                           _diff(totals.duration, last.duration))
            out["overhead_ms"] = _quantiles(self.metrics.overhead,
                                            _diff(totals.overhead, last.overhead))
        out["deployments"] = deployments
        out.update(extra or {})
        return out


def _cache(now: dict[str, float], before: dict[str, float]) -> dict[str, Any]:
    """Hits and misses in the interval and their ratio (None without lookups)."""
    hits, misses = (int(now.get(k, 0) - before.get(k, 0)) for k in ("hit", "miss"))
    return {"hits": hits, "misses": misses,
            "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None}


def _quantiles(histogram: Histogram, counts: list[int]) -> dict[str, float | None]:
    """p50 and p99 of ``counts`` in milliseconds (None without observations)."""
    p50, p99 = (percentile(histogram.bounds, counts, q) for q in (0.5, 0.99))
    return {"p50": _ms(p50), "p99": _ms(p99), "count": sum(counts)}
