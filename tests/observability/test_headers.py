"""``x-modelmux-overhead-ms``, ``x-modelmux-provider`` and ``x-modelmux-attempts`` on chat answers.

Overhead is ModelMux's own time: with an upstream that takes 200 ms to answer, the total the
client measures includes those 200 ms and the overhead does not.
"""

from __future__ import annotations

import time

import pytest

from tests.observability.helpers import (
    ANSWER,
    UPSTREAM_KEY,
    SlowOpenAI,
    chat_body,
    gateway,
    request,
)

CHAT = "/v1/chat/completions"
SLOW = 0.2


def overhead_ms(headers: dict[str, str]) -> float:
    text = headers["x-modelmux-overhead-ms"]
    assert text.count(".") == 1 and len(text.split(".")[1]) == 3, text  # milliseconds, 3 decimals
    return float(text)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("model", ["mock", "gpt-x", "claude-x"])
def test_overhead_is_non_negative_and_below_the_total(run, model: str, stream: bool) -> None:
    async def main() -> None:
        async with gateway() as (_, port, _, _):
            began = time.perf_counter()
            status, headers, _ = await request(port, "POST", CHAT, chat_body(model, stream=stream))
            elapsed_ms = (time.perf_counter() - began) * 1000
        assert status == 200
        assert 0 <= overhead_ms(headers) < elapsed_ms
        provider = {"mock": "mock", "gpt-x": "oai", "claude-x": "claude"}[model]
        assert headers["x-modelmux-provider"] == provider
        assert headers["x-modelmux-attempts"] == ("0" if model == "mock" else "1")

    run(main())


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_time_waiting_on_the_upstream_is_not_overhead(run, stream: bool) -> None:
    async def main() -> None:
        slow = SlowOpenAI(SLOW, api_key=UPSTREAM_KEY, answer=ANSWER)
        async with gateway(slow) as (app, port, _, _):
            began = time.perf_counter()
            status, headers, _ = await request(port, "POST", CHAT,
                                               chat_body("gpt-x", stream=stream))
            elapsed_ms = (time.perf_counter() - began) * 1000
            waited = app.metrics.upstream_duration.sum(("oai", "gpt-x", str(stream).lower()))
        assert status == 200 and elapsed_ms >= SLOW * 1000
        assert waited >= SLOW
        # the client's total holds the overhead and at least SLOW of waiting, which the
        # overhead leaves out (0.001: the header's rounding)
        assert overhead_ms(headers) <= elapsed_ms - SLOW * 1000 + 0.001

    run(main())


def test_retries_show_in_attempts(run) -> None:
    async def main() -> None:
        async with gateway() as (_, port, fake_openai, _):
            fake_openai.faults.extend(["429", "500"])
            status, headers, _ = await request(port, "POST", CHAT, chat_body("gpt-x", stream=True))
        assert status == 200
        assert headers["x-modelmux-attempts"] == "3"
        assert overhead_ms(headers) >= 0

    run(main())


def test_an_upstream_error_names_provider_and_attempts_without_overhead(run) -> None:
    async def main() -> None:
        async with gateway() as (_, port, fake_openai, _):
            fake_openai.faults.extend(["500", "500", "500"])
            status, headers, _ = await request(port, "POST", CHAT,
                                               chat_body("gpt-x", stream=False))
        assert status == 502
        assert headers["x-modelmux-provider"] == "oai"
        assert headers["x-modelmux-attempts"] == "3"
        assert "x-modelmux-overhead-ms" not in headers

    run(main())


def test_other_routes_carry_no_chat_headers(run) -> None:
    async def main() -> None:
        async with gateway() as (_, port, _, _):
            _, headers, _ = await request(port, "GET", "/v1/models")
        assert not [name for name in headers if name.startswith("x-modelmux-")]

    run(main())
