"""pytest-benchmark: the cost stage's CPU per request, spend off beside spend on, in one run;
and the stream relay with and without the usage kept from the client.

Run: ``python -m pytest benchmarks/test_bench_spend.py``. One round of the stage cases runs
what the door runs after a whole answer for ``REQUESTS`` requests: the stages' answer headers
(the cost header) and their ``on_answer`` hooks. ``off`` is ``[analytics.cost_tracking]
enabled = false`` (no cost stage is built); ``cost`` is the default (cost, header, record);
``full`` adds the spend log's queue and a global budget counted in memory. The relay cases feed
one 10-chunk stream (with ``include_usage``'s ``"usage": null`` on each chunk and the usage
chunk at the end) through the relay: as the client asked for it, and with the usage hidden.
"""

from __future__ import annotations

import pytest

from modelmux.config.features import AnalyticsConfig, CostTrackingConfig, PriceConfig
from modelmux.config.schema import Config
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline
from modelmux.providers.base import CallStats
from modelmux.providers.openai_compatible import ChunkRelay
from modelmux.providers.chunk_relay import UsageHidden
from modelmux.schemas.openai_chat import request_decoder
from modelmux.spend.account import CostStage
from modelmux.spend.budget import BudgetStage
from modelmux.spend.counters import MemoryCounters
from modelmux.spend.log import SpendLog
from modelmux.spend.prices import PriceTable

pytest.importorskip("pytest_benchmark")

REQUESTS = 1000
BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi."}]}'
ANSWER = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",'
          b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},'
          b'"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,'
          b'"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0}}}')


def contexts(budgeted: bool) -> list[RequestContext]:
    request = request_decoder.decode(BODY)
    out = []
    for n in range(REQUESTS):
        record = RequestRecord(f"r{n}", "/v1/chat/completions")
        record.provider, record.upstream_model = "openai", "gpt-4o-mini"
        stats = record.stats = CallStats()
        stats.tokens, stats.started_ns = (12, 3), 1
        ctx = RequestContext("openai.chat", request, BODY, [], f"r{n}", record)
        ctx.answer, ctx.status = ANSWER, 200
        if budgeted:
            ctx.state["spend.budgets"] = budgets.applicable(None)
        out.append(ctx)
    return out


async def _noop(*args: object) -> None:
    return None


budgets = BudgetStage(MemoryCounters(), global_limit=1e9, alert_at=0.8)


def pipeline(case: str) -> tuple[Pipeline, SpendLog | None]:
    if case == "off":
        return Pipeline([]), None
    prices = PriceTable(Config(prices=[PriceConfig(model="x", input_per_mtok=1,
                                                   output_per_mtok=2)],
                               analytics=AnalyticsConfig(CostTrackingConfig())).prices)
    if case == "cost":
        return Pipeline([CostStage(prices)]), None
    spend_log = SpendLog(_noop, retention_days=1, max_pending=10 * REQUESTS)
    spend_log._task = object()  # type: ignore[assignment]  # no writer: the queue alone
    return Pipeline([budgets, CostStage(prices, [lambda c, r: spend_log.add(r),
                                                    budgets.count])]), spend_log


@pytest.mark.parametrize("case", ["off", "cost", "full"])
def test_account_stage(benchmark: pytest.FixtureRequest, case: str) -> None:
    pipe, spend_log = pipeline(case)

    def setup() -> tuple[tuple[list[RequestContext]], dict[str, object]]:
        if spend_log is not None:
            spend_log.pending.clear()
        return (contexts(case == "full"),), {}

    def account(batch: list[RequestContext]) -> None:
        for ctx in batch:
            if pipe.heads:
                pipe.answer_headers(ctx)
            if pipe.observes:
                pipe.after_answer(ctx)

    benchmark.pedantic(account, setup=setup, rounds=60, iterations=1)  # type: ignore[attr-defined]


def chunk(n: int) -> bytes:
    return (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"content":"tok%d"},"finish_reason":null}],'
            b'"usage":null}\n\n' % n)


STREAM = (b"".join(chunk(n) for n in range(10))
          + b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":10}}\n\n'
          + b"data: [DONE]\n\n")
PIECES = [STREAM[i:i + 180] for i in range(0, len(STREAM), 180)]


@pytest.mark.parametrize("hidden", [False, True], ids=["as-asked", "usage-hidden"])
def test_stream_relay(benchmark: pytest.FixtureRequest, hidden: bool) -> None:
    def relay_all() -> None:
        for _ in range(REQUESTS // 10):
            plain = ChunkRelay("up", "m")
            relay = UsageHidden(plain) if hidden else plain
            for piece in PIECES:
                relay.feed(piece)

    benchmark.pedantic(relay_all, rounds=40, iterations=1)  # type: ignore[attr-defined]
