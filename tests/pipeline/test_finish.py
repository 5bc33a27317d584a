"""The finish stage (``pipeline.finish``): declared among the account stages, never run by the
pipeline per request, and the end of every exchange on every route (metrics, access line,
``--workers`` publish), after spend's cost stage put the cost on the record."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from modelmux.api.app import App
from modelmux.config.features import AnalyticsConfig, CostTrackingConfig, PriceConfig
from modelmux.config.providers import MockProviderConfig
from modelmux.config.schema import Config
from modelmux.observability.metrics import merge
from modelmux.observability.shared import SharedMetrics
from modelmux.pipeline.finish import FinishStage
from modelmux.pipeline.route import RouteStage
from modelmux.pipeline.stage import ORDER, Pipeline
from modelmux.spend.account import CostStage
from tests.conftest import Runner
from tests.observability.conftest import logs  # noqa: F401  # the access lines, captured
from tests.observability.helpers import ANSWER, chat_body, gateway, request, scrape

CHAT = "/v1/chat/completions"
PRICE = PriceConfig(model="gpt-x", input_per_mtok=3.0, output_per_mtok=15.0)
COST = (ANSWER.prompt_tokens * 3.0 + ANSWER.completion_tokens * 15.0) / 1e6


def access(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "modelmux.access"]


def costed(config: Config) -> Config:
    return msgspec.structs.replace(
        config, prices=[PRICE],
        analytics=AnalyticsConfig(cost_tracking=CostTrackingConfig(enabled=True)))


def test_the_app_declares_its_finish_stage_after_the_cost_stage() -> None:
    mock = [MockProviderConfig(name="m", models=["m"])]
    plain = App(Config(provider=mock))
    assert [type(s) for s in plain.pipeline.stages] == [RouteStage, FinishStage]
    assert plain.lane is not None  # the finish stage keeps no request off the chat lane
    spend = App(costed(Config(provider=mock)))
    stages = spend.pipeline.stages
    assert [type(s) for s in stages][-2:] == [CostStage, FinishStage]
    assert stages[-1] is spend.finish and spend.finish.kind == "account" == stages[-2].kind
    assert spend.lane is None
    assert ORDER.index("account") > ORDER.index("call")


def test_the_pipeline_runs_nothing_of_the_finish_stage_per_request() -> None:
    app = App(Config(provider=[MockProviderConfig(name="m", models=["m"])]))
    only = Pipeline([app.finish])
    assert only.observes is False and only.heads is False
    assert Pipeline([*app.pipeline.stages]).observes is False


def test_every_route_is_counted_and_logged_once(run: Runner,
                                                logs: pytest.LogCaptureFixture) -> None:
    asked = [("POST", CHAT, 200), ("GET", "/v1/models", 200), ("GET", "/health", 503),
             ("GET", "/nowhere", 404), ("DELETE", "/v1/models", 405),
             ("OPTIONS", "/v1/models", 204),
             ("POST", CHAT, 400)]

    async def main() -> dict[tuple[str, str], float]:
        async with gateway() as (_, port, _, _):
            for method, path, status in asked:
                body = (chat_body("mock", stream=False) if status == 200 else {"model": 3}
                        ) if method == "POST" else None
                got, _, _ = await request(port, method, path, body)
                assert got == status
            samples = await scrape(port)
        counts: dict[tuple[str, str], float] = {}
        for sample in samples["modelmux_requests_total"]:
            key = (sample.labels["route"], sample.labels["status"])
            counts[key] = counts.get(key, 0) + sample.value
        in_flight = samples["modelmux_requests_in_flight"][0].value
        assert in_flight == 1  # the scrape itself
        return counts

    counts = run(main())
    logged = [(r.method, r.path, r.status) for r in access(logs)]
    assert logged == [*asked, ("GET", "/metrics", 200)]
    assert counts[(CHAT, "200")] == 1 and counts[(CHAT, "400")] == 1
    assert sum(counts.values()) == len(asked)


def test_the_cost_is_on_the_record_before_the_line_and_the_metric(
        run: Runner, logs: pytest.LogCaptureFixture) -> None:
    async def main() -> float:
        async with gateway(change=costed) as (_, port, _, _):
            status, headers, _ = await request(port, "POST", CHAT,
                                               chat_body("gpt-x", stream=False))
            assert status == 200 and float(headers["x-modelmux-cost-usd"]) == pytest.approx(COST)
            samples = await scrape(port)
        return sum(s.value for s in samples["modelmux_cost_usd_total"])

    assert run(main()) == pytest.approx(COST)
    chat = [r for r in access(logs) if r.path == CHAT]
    assert len(chat) == 1 and chat[0].cost_usd == pytest.approx(COST)


def _published(path: Path) -> dict[str, list[Sample]]:
    """A worker's published snapshot, as a scrape would read it: sample name -> samples."""
    if not path.exists():
        return {}
    merged = merge([(msgspec.json.decode(path.read_bytes()), True)])
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(merged.render().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_under_workers_a_request_is_published_with_fresh_gauges(run: Runner,
                                                                tmp_path: Path) -> None:
    published = tmp_path / "7.json"

    def health_counted() -> bool:
        return any(s.labels["route"] == "/health"
                   for s in _published(published).get("modelmux_requests_total", []))

    async def main() -> None:
        async with gateway() as (app, port, _, _):
            app.metrics.shared = SharedMetrics(tmp_path, pid=7, interval=0.0)
            assert (await request(port, "GET", "/health"))[0] == 503  # not marked ready
            for _ in range(200):
                if health_counted():
                    break
                await asyncio.sleep(0.01)
            app.metrics.shared = None

    run(main())
    assert health_counted()
    states = _published(published)["modelmux_deployment_state"]  # set only by the gauges
    assert {s.labels["state"] for s in states} >= {"closed"}
