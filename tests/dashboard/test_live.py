"""The live snapshot: per-interval figures from the metrics, and a publisher that only works
while someone watches."""

from __future__ import annotations

import asyncio

from modelmux.observability.events import EventHub
from modelmux.observability.gateway import GatewayMetrics
from modelmux.observability.live import LiveView, percentile
from tests.conftest import Runner


def count(metrics: GatewayMetrics, route: str, status: str, n: int = 1) -> None:
    metrics.requests.inc((route, "m", "p", status), n)


def test_percentile_interpolates_inside_the_bucket_and_is_none_without_data() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert percentile(bounds, [0, 0, 0, 0], 0.5) is None
    assert percentile(bounds, [0, 10, 0, 0], 0.5) == 1.5
    assert percentile(bounds, [0, 0, 0, 3], 0.99) == 4.0  # past the last bound: that bound


def test_rates_cover_only_the_interval_and_leave_the_admin_api_out() -> None:
    metrics = GatewayMetrics("t")
    view = LiveView(metrics)
    count(metrics, "/v1/chat/completions", "200", 5)
    first = view.sample(10.0, {})
    assert first["requests_per_s"] is None and first["requests_total"] == 5
    count(metrics, "/v1/chat/completions", "200", 3)
    count(metrics, "/v1/chat/completions", "502", 1)
    count(metrics, "/admin/providers", "200", 50)
    metrics.tokens.inc(("m", "p", "output"), 40)
    metrics.errors.inc(("p", "upstream_timeout"))
    metrics.cost.inc(("p", "m", ""), 0.01)
    metrics.cache_requests.inc(("hit",), 3)
    metrics.cache_requests.inc(("miss",), 1)
    for seconds in (0.05, 0.05, 0.3):
        metrics.server_duration.observe(("chat", "openai", "m", ""), seconds)
    second = view.sample(12.0, {"p/m": {"breaker": {"state": "closed"}}})
    assert second["requests_per_s"] == 2.0  # 4 chat requests in 2 s; admin calls ignored
    assert second["errors"] == {"502": 1}
    assert second["upstream_errors"] == {"upstream_timeout": 1}
    assert second["tokens_per_s"] == {"input": 0.0, "output": 20.0}
    assert second["cost_per_hour_usd"] == 18.0  # 0.01 USD in 2 s
    assert second["cache"] == {"hits": 3, "misses": 1, "hit_ratio": 0.75}
    assert second["latency_ms"]["count"] == 3
    assert 40 <= second["latency_ms"]["p50"] <= 80 and second["latency_ms"]["p99"] <= 320
    assert second["deployments"]["p/m"]["breaker"]["state"] == "closed"
    third = view.sample(13.0, {})
    assert third["requests_per_s"] == 0.0 and third["latency_ms"]["p50"] is None
    assert third["cache"]["hit_ratio"] is None


def test_the_hub_runs_no_task_unless_someone_subscribes(run: Runner) -> None:
    async def main() -> None:
        metrics = GatewayMetrics("t")
        hub = EventHub(LiveView(metrics), dict, interval=3600)
        assert not hub.running
        hub.publish()  # nobody to hand it to: nothing queued anywhere
        assert hub.subscribers == 0
        first = hub.subscribe()
        assert hub.running
        second = hub.subscribe()
        event = await asyncio.wait_for(first.get(), 5)
        assert event is not None and event.startswith(b"event: snapshot\ndata: {")
        hub.unsubscribe(first)
        assert hub.running  # one still watches
        hub.unsubscribe(second)
        assert not hub.running and hub.subscribers == 0

    run(main())


def test_a_slow_subscriber_keeps_only_the_latest_events_and_close_ends_streams(run: Runner) -> None:
    async def main() -> None:
        hub = EventHub(LiveView(GatewayMetrics("t")), dict, interval=3600)
        queue = hub.subscribe()
        for _ in range(10):
            hub.publish()
        assert queue.qsize() == 2
        hub.close()
        assert not hub.running
        items = [queue.get_nowait() for _ in range(queue.qsize())]
        assert items[-1] is None

    run(main())


def test_event_streams_are_not_counted_in_flight() -> None:
    metrics = GatewayMetrics("t")
    metrics.started()
    metrics.started()
    assert LiveView(metrics).sample(1.0, {}, watchers=1)["in_flight"] == 1
