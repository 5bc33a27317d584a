"""Adding up workers' registries: counters and histograms over all, gauges over the live ones."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modelmux.api.app import App
from modelmux.config.providers import MockProviderConfig
from modelmux.config.schema import Config
from modelmux.observability.gateway import GatewayMetrics
from modelmux.observability.metrics import Registry, merge
from modelmux.observability.shared import SharedMetrics, worker_directory
from tests.conftest import Runner


def _registry(requests: float, in_flight: float, seconds: list[float]) -> Registry:
    registry = Registry()
    registry.gauge("info", "Build.", ("version",), merge="max").set(("1",), 1)
    registry.counter("requests_total", "Requests.", ("route",)).inc(("/a",), requests)
    registry.gauge("in_flight", "Now.").inc((), in_flight)
    histogram = registry.histogram("latency_seconds", "Latency.", ("route",), (0.1, 1.0))
    for value in seconds:
        histogram.observe(("/a",), value)
    return registry


def _parsed(registry: Registry) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(registry.render().decode()):
        for sample in family.samples:
            out[(sample.name, sample.labels.get("le", ""))] = sample.value
    return out


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True, timeout=30)
    return int(done.stdout)


def test_merge_adds_counters_and_histograms_and_live_gauges() -> None:
    one, two = _registry(3, 2, [0.05, 0.5]), _registry(4, 5, [5.0])
    gone = _registry(10, 7, [0.05])
    merged = _parsed(merge([(one.snapshot(), True), (two.snapshot(), True),
                            (gone.snapshot(), False)]))
    assert merged[("requests_total", "")] == 17
    assert merged[("in_flight", "")] == 7  # the dead worker's 7 is not current
    assert merged[("info", "")] == 1
    assert merged[("latency_seconds_bucket", "0.1")] == 2
    assert merged[("latency_seconds_bucket", "1.0")] == 3
    assert merged[("latency_seconds_bucket", "+Inf")] == 4
    assert merged[("latency_seconds_count", "")] == 4
    assert merged[("latency_seconds_sum", "")] == 5.6


def test_a_family_that_changed_shape_is_skipped() -> None:
    old = Registry()
    old.histogram("latency_seconds", "Latency.", ("route",), (0.5,)).observe(("/a",), 0.2)
    old.counter("requests_total", "Requests.", ("path",)).inc(("/a",), 9)
    new = _registry(1, 0, [0.05])
    merged = _parsed(merge([(new.snapshot(), True), (old.snapshot(), True)]))
    assert merged[("requests_total", "")] == 1 and merged[("latency_seconds_count", "")] == 1


def test_workers_share_a_directory(run: Runner, tmp_path: Path) -> None:
    with worker_directory() as directory:
        alive = SharedMetrics(directory, pid=1)  # pid 1 is always alive
        dead = SharedMetrics(directory, pid=_dead_pid())
        dead.close(_registry(10, 7, []))
        (Path(directory) / "garbage.json").write_text("{")
        (Path(directory) / "123.json").write_text("not json")
        me = SharedMetrics(directory)
        own = _registry(1, 1, [])

        async def main() -> None:
            registry = _registry(2, 3, [])
            alive.soon(registry, lambda: registry.counter("refreshed_total", "x").inc())
            alive.soon(registry, lambda: None)  # one publication for both
            for _ in range(100):
                if (Path(directory) / "1.json").exists():
                    break
                await asyncio.sleep(0.01)

        run(main())
        merged = _parsed(me.merged(own))
        assert merged[("requests_total", "")] == 13
        assert merged[("in_flight", "")] == 4
        assert ("refreshed_total", "") not in merged  # the second refresh replaced the first
        assert sorted(p.name for p in Path(directory).glob("*.json")) == sorted(
            ["1.json", f"{dead.pid}.json", f"{me.pid}.json", "garbage.json", "123.json"])
    assert not Path(directory).exists()


def test_a_reload_keeps_the_new_apps_pending_publication(run: Runner, tmp_path: Path) -> None:
    """The metrics object outlives a reload: retiring the old App must not close it."""
    config = Config(provider=[MockProviderConfig(name="mock", models=["mock"])])

    async def main() -> None:
        old = App(config)
        shared = old.metrics.shared = SharedMetrics(tmp_path, interval=0.05)
        new = App(config, metrics=old.metrics)
        refreshed: list[bool] = []
        shared.publish(new.metrics.registry)  # the next publication waits for the interval
        shared.soon(new.metrics.registry, lambda: refreshed.append(True))
        await old.retire(1.0)
        for _ in range(200):
            if refreshed:
                break
            await asyncio.sleep(0.01)
        assert refreshed == [True]
        await new.aclose()

    run(main())


def test_per_worker_deployment_gauges_count_workers_and_add_in_flight() -> None:
    """Each worker has its own breakers: merged, a state reads how many live workers are in it
    (a split shows as a split, not as two states that are each "the" state)."""
    def worker(state: str, in_flight: int) -> list[Any]:
        metrics = GatewayMetrics("t")
        metrics.refresh({}, 0, {"p/m": {"provider": "p", "breaker": {"state": state},
                                        "in_flight": in_flight}})
        return metrics.registry.snapshot()

    merged = merge([(worker("closed", 2), True), (worker("open", 0), True),
                    (worker("closed", 1), True), (worker("half_open", 5), False)])
    out = {}
    for family in text_string_to_metric_families(merged.render().decode()):
        for sample in family.samples:
            if sample.name.startswith("modelmux_deployment_"):
                out[(sample.name, sample.labels.get("state", ""))] = sample.value
    assert out == {("modelmux_deployment_state", "closed"): 2,
                   ("modelmux_deployment_state", "open"): 1,
                   ("modelmux_deployment_state", "half_open"): 0,
                   ("modelmux_deployment_in_flight", ""): 3}
