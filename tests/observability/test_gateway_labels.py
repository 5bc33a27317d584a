"""GatewayMetrics.observe works out each kind of request's label tuples once; the counts must
come out as if they were worked out per request."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from modelmux.observability import gateway
from modelmux.observability.gateway import GatewayMetrics
from modelmux.observability.record import RequestRecord
from modelmux.providers.base import CallStats


def _finish(metrics: GatewayMetrics, *, model: str = "m", status: int = 200,
            errors: tuple[str, ...] = (), tokens: tuple[int, int] | None = (3, 4)) -> None:
    record = RequestRecord("id", "/v1/chat/completions")
    record.model, record.provider, record.provider_type = model, "p", "openai_compatible"
    record.upstream_model, record.mode = "up", "never"
    stats = record.stats = CallStats()
    stats.attempts, stats.errors, stats.tokens, stats.total_ns = 1, list(errors), tokens, 10**6
    exchange: Any = SimpleNamespace(status=status, started=True, started_ns=0, head_ns=0)
    metrics.started()
    metrics.observe(record, exchange, 2 * 10**6)


def test_repeated_requests_count_under_the_same_labels() -> None:
    metrics = GatewayMetrics("t", ["m"])
    for _ in range(3):
        _finish(metrics)
    assert metrics.requests.value(("/v1/chat/completions", "m", "p", "200")) == 3
    assert metrics.tokens.value(("m", "p", "output")) == 12
    asked = ("chat", "openai", "up")
    assert metrics.operation_duration.count((*asked, "")) == 3
    assert metrics.token_usage.count((*asked, "input")) == 3
    assert metrics.in_flight.value() == 0
    assert len(metrics._labels) == 1


def test_failed_requests_take_their_own_last_error() -> None:
    metrics = GatewayMetrics("t", ["m"])
    _finish(metrics, status=502, errors=("upstream_timeout",), tokens=None)
    _finish(metrics, status=502, errors=("upstream_closed",), tokens=None)
    asked = ("chat", "openai", "up")
    assert metrics.operation_duration.count((*asked, "upstream_timeout")) == 1
    assert metrics.operation_duration.count((*asked, "upstream_closed")) == 1
    assert metrics.server_duration.count(("chat", "openai", "m", "502")) == 2


def test_past_the_cache_bound_requests_still_count(monkeypatch: Any) -> None:
    monkeypatch.setattr(gateway, "MAX_LABEL_SETS", 2)
    metrics = GatewayMetrics("t")
    for index in range(gateway.MAX_EXTRA_MODELS + 5):
        _finish(metrics, model=f"m{index}")
    assert len(metrics._labels) == 2
    assert metrics.requests.value(("/v1/chat/completions", "m0", "p", "200")) == 1
    assert metrics.requests.value(("/v1/chat/completions", gateway.OTHER, "p", "200")) == 5


def test_series_kept_by_the_labels_are_the_ones_rendered() -> None:
    metrics = GatewayMetrics("t", ["m"])
    for _ in range(2):
        _finish(metrics)
    served = ("chat", "openai", "m", "")
    assert metrics.server_duration.count(served) == 2
    assert metrics.server_duration.sum(served) == 2 * 0.002
    assert metrics.token_usage.buckets(("chat", "openai", "up", "output"))[2] == (16.0, 2)
    text = metrics.registry.render().decode()
    assert 'gen_ai_client_token_usage_count{gen_ai_operation_name="chat"' in text


def test_a_histogram_series_counts_like_observe() -> None:
    metrics = GatewayMetrics("t")
    histogram = metrics.server_duration
    series = histogram.series(("chat", "openai", "m", ""))
    assert histogram.series(("chat", "openai", "m", "")) is series
    histogram.observe(("chat", "openai", "m", ""), 0.03)
    assert series.counts[2] == 1 and series.total == 0.03
