"""``GET /metrics`` from a real server after real chat requests, parsed by prometheus_client.

The app serves the mock provider, an ``openai_compatible`` upstream and Anthropic (both fakes on
loopback): streams and JSON answers, a retried 429, an upstream 400 and an unknown model.
"""

from __future__ import annotations

import asyncio
import json

from modelmux import __version__
from tests.observability.helpers import (
    ANSWER,
    CLAUDE_ANSWER,
    MOCK_REPEAT,
    MOCK_TEXT,
    chat_body,
    gateway,
    request,
    scrape,
    total,
    value,
)
from tests.server.helpers import connect

CHAT = "/v1/chat/completions"
REQUESTS = "modelmux_requests_total"
HISTOGRAMS = (
    "modelmux_overhead_seconds", "modelmux_upstream_duration_seconds",
    "modelmux_upstream_time_to_first_token_seconds", "gen_ai_client_token_usage",
    "gen_ai_client_operation_duration_seconds", "gen_ai_server_request_duration_seconds",
    "gen_ai_server_time_to_first_token_seconds",
)


def test_scrape_after_chat_traffic(run) -> None:
    async def main() -> None:
        async with gateway() as (_, port, fake_openai, fake_claude):
            statuses = [
                (await request(port, "POST", CHAT, chat_body("mock", stream=True)))[0],
                (await request(port, "POST", CHAT, chat_body("mock", stream=False)))[0],
                (await request(port, "POST", CHAT, chat_body("nope", stream=False)))[0],
                (await request(port, "POST", CHAT, chat_body("gpt-x", stream=True,
                                                             usage=True)))[0],
                (await request(port, "POST", CHAT, chat_body("claude-x", stream=True)))[0],
                (await request(port, "POST", CHAT, chat_body("claude-x", stream=False)))[0],
            ]
            fake_openai.faults.append("429")
            statuses.append((await request(port, "POST", CHAT,
                                           chat_body("gpt-x", stream=False)))[0])
            fake_openai.faults.append("400")
            statuses.append((await request(port, "POST", CHAT,
                                           chat_body("gpt-x", stream=False)))[0])
            assert statuses == [200, 200, 404, 200, 200, 200, 200, 400]
            first = await scrape(port)
            second = await scrape(port)
            origins = {fake_openai.origin, fake_claude.origin}

        def requests(**labels: str) -> float:
            return value(first, REQUESTS, route=CHAT, **labels)

        assert requests(model="mock", provider="mock", status="200") == 2
        assert requests(model="gpt-x", provider="oai", status="200") == 2
        assert requests(model="gpt-x", provider="oai", status="400") == 1
        assert requests(model="claude-x", provider="claude", status="200") == 2
        assert requests(model="", provider="", status="404") == 1  # unresolved: no model label
        assert total(first, REQUESTS) == 8
        assert value(second, REQUESTS, route="/metrics", status="200") == 1  # the first scrape

        assert value(first, "modelmux_requests_in_flight") == 1  # the scrape itself
        assert value(first, "modelmux_client_connections") == 1
        assert value(first, "modelmux_build_info", version=__version__) == 1
        assert value(first, "modelmux_fallbacks_total") == 0

        mock_out = (len(MOCK_TEXT) * MOCK_REPEAT + 3) // 4
        tokens = {(s.labels["model"], s.labels["type"]): s.value
                  for s in first["modelmux_tokens_total"]}
        assert tokens == {
            ("mock", "input"): 1, ("mock", "output"): mock_out,  # JSON answer only
            ("gpt-x", "input"): 2 * ANSWER.prompt_tokens,  # stream usage chunk + JSON answer
            ("gpt-x", "output"): 2 * ANSWER.completion_tokens,
            ("claude-x", "input"): 2 * CLAUDE_ANSWER.prompt_tokens,  # translator + JSON
            ("claude-x", "output"): 2 * CLAUDE_ANSWER.completion_tokens,
        }
        usage = "gen_ai_client_token_usage"
        assert value(first, f"{usage}_sum", gen_ai_provider_name="anthropic",
                     gen_ai_token_type="output") == 2 * CLAUDE_ANSWER.completion_tokens
        assert value(first, f"{usage}_count", gen_ai_provider_name="openai",
                     gen_ai_operation_name="chat", gen_ai_request_model="gpt-x",
                     gen_ai_token_type="input") == 2
        assert value(first, f"{usage}_bucket", gen_ai_provider_name="openai",
                     gen_ai_token_type="input", le="16.0") == 0
        assert value(first, f"{usage}_bucket", gen_ai_provider_name="openai",
                     gen_ai_token_type="input", le="64.0") == 2

        assert value(first, "modelmux_upstream_retries_total", provider="oai") == 1
        errors = {(s.labels["provider"], s.labels["code"]): s.value
                  for s in first["modelmux_upstream_errors_total"]}
        assert errors == {("oai", "rate_limit_exceeded"): 1, ("oai", "invalid_request"): 1}

        operation = "gen_ai_client_operation_duration_seconds_count"
        assert value(first, operation, gen_ai_provider_name="openai", error_type="") == 2
        assert value(first, operation, gen_ai_provider_name="openai",
                     error_type="invalid_request") == 1
        assert value(first, operation, gen_ai_provider_name="anthropic", error_type="") == 2
        assert value(first, operation, gen_ai_provider_name="mock") == 0  # no upstream call

        server = "gen_ai_server_request_duration_seconds_count"
        assert total(first, server) == 7  # every chat request that reached a provider
        assert value(first, server, gen_ai_provider_name="openai", error_type="400") == 1
        assert value(first, server, gen_ai_provider_name="mock", gen_ai_request_model="mock",
                     error_type="") == 2
        ttft = "gen_ai_server_time_to_first_token_seconds_count"
        assert {s.labels["gen_ai_provider_name"]: s.value for s in first[ttft]} == \
            {"mock": 1, "openai": 1, "anthropic": 1}
        upstream_ttft = "modelmux_upstream_time_to_first_token_seconds_count"
        assert {s.labels["provider"]: s.value for s in first[upstream_ttft]} == \
            {"oai": 1, "claude": 1}
        duration = "modelmux_upstream_duration_seconds_count"
        assert value(first, duration, provider="oai", model="gpt-x", stream="false") == 2
        assert value(first, duration, provider="claude", stream="true") == 1
        overhead = "modelmux_overhead_seconds_count"
        assert value(first, overhead, provider="oai", stream="false") == 1  # the 400 had none
        assert total(first, overhead) == 6

        for key in ("connections", "idle", "in_use", "waiters"):
            assert {s.labels["origin"] for s in first[f"modelmux_upstream_pool_{key}"]} == origins
        for origin in origins:
            open_now = value(first, "modelmux_upstream_pool_connections", origin=origin)
            assert open_now >= 1
            assert value(first, "modelmux_upstream_pool_idle", origin=origin) == open_now
        assert total(first, "modelmux_upstream_pool_in_use") == 0
        assert total(first, "modelmux_upstream_pool_waiters") == 0
        assert_histograms_consistent(first)

    run(main())


def assert_histograms_consistent(samples: dict[str, list]) -> None:
    """Buckets never decrease, ``+Inf`` equals ``_count``, each histogram exposes all three."""
    for name in HISTOGRAMS:
        assert f"{name}_bucket" in samples, name
        series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for sample in samples[f"{name}_bucket"]:
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            series.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
        counts = {tuple(sorted(s.labels.items())): s.value for s in samples[f"{name}_count"]}
        for key, buckets in series.items():
            values = [v for _, v in sorted(buckets)]
            assert values == sorted(values), (name, key)
            assert buckets[-1][0] == float("inf") and buckets[-1][1] == counts[key]


def test_a_scrape_is_valid_before_any_traffic(run) -> None:
    async def main() -> None:
        async with gateway() as (app, port, _, _):
            samples = await scrape(port)
            status, _, body = await request(port, "HEAD", "/metrics")
            assert status == 200 and body == b""
            # done() runs in the step that wrote the response, before the client can read it
            assert app.metrics.requests.value(("/metrics", "", "", "200")) == 2  # GET and HEAD
        assert value(samples, "modelmux_requests_in_flight") == 1
        assert "modelmux_requests_total" not in samples
        assert samples["modelmux_fallbacks_total"][0].value == 0

    run(main())


def test_a_client_that_leaves_mid_stream_is_counted(run) -> None:
    async def main() -> None:
        async with gateway() as (app, port, fake_openai, _):
            fake_openai.faults.append("hold")  # a few chunks, then nothing
            reader, writer = await connect(port)
            body = json.dumps(chat_body("gpt-x", stream=True)).encode()
            writer.write(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            await reader.readuntil(b"\r\n\r\n")
            writer.close()
            await fake_openai.wait_for(lambda: fake_openai.peer_left == 1)
            for _ in range(100):  # the cancelled handler finishes within a few loop steps
                if app.metrics.in_flight.value() == 0:
                    break
                await asyncio.sleep(0)
            samples = await scrape(port)
        assert value(samples, REQUESTS, route=CHAT, model="gpt-x", status="200") == 1
        assert value(samples, "modelmux_requests_in_flight") == 1

    run(main())



def test_embeddings_and_completions_count_under_their_own_operation(run) -> None:
    async def main() -> None:
        async with gateway() as (_, port, _openai, _claude):
            status, _, _ = await request(port, "POST", "/v1/embeddings",
                                         {"model": "gpt-x", "input": ["a b", "c"]})
            assert status == 200
            status, _, _ = await request(port, "POST", "/v1/completions",
                                         {"model": "gpt-x", "prompt": "x"})
            assert status == 200
            samples = await scrape(port)
        usage = "gen_ai_client_token_usage_sum"
        assert value(samples, usage, gen_ai_operation_name="embeddings",
                     gen_ai_token_type="input") == 3
        assert value(samples, usage, gen_ai_operation_name="text_completion",
                     gen_ai_token_type="output") == ANSWER.completion_tokens
        assert value(samples, usage, gen_ai_operation_name="chat") == 0
        assert value(samples, REQUESTS, route="/v1/embeddings", model="gpt-x", provider="oai",
                     status="200") == 1
    run(main())
