"""The access log: one line per request with the right fields, and no secret or prompt, ever."""

from __future__ import annotations

import json
import logging

import pytest

from modelmux.observability.access import logfmt
from tests.observability.helpers import (
    ANSWER,
    ANTHROPIC_KEY,
    UPSTREAM_KEY,
    chat_body,
    gateway,
    request,
)

CHAT = "/v1/chat/completions"
CLIENT_KEY = "sk-client-SECRET-5f5f"
PROMPT = "PROMPT-SECRET-my bank password is hunter2"
FIELDS = ["request_id", "client", "key", "method", "path", "status", "model", "provider",
          "stream_mode", "attempts", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "ttft_ms",
          "overhead_ms", "bytes_received", "bytes_sent", "completed", "trace_id"]


def access(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "modelmux.access"]


def test_one_line_per_request_with_every_field(run, logs: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with gateway() as (_, port, _, _):
            await request(port, "POST", CHAT, chat_body("gpt-x", stream=True, usage=True),
                          {"x-request-id": "req-stream-1"})
            await request(port, "POST", CHAT, chat_body("claude-x", stream=False),
                          {"x-request-id": "req-json-2"})
            await request(port, "GET", "/health", headers={"x-request-id": "req-health-3"})

    run(main())
    records = access(logs)
    assert [r.request_id for r in records] == ["req-stream-1", "req-json-2", "req-health-3"]
    stream, answer, health = records
    assert all(r.levelno == logging.INFO for r in records)
    for record in records:
        line = record.getMessage()
        assert "\n" not in line
        assert line == logfmt({name: getattr(record, name) for name in FIELDS})

    assert (stream.method, stream.path, stream.status) == ("POST", CHAT, 200)
    assert (stream.model, stream.provider, stream.stream_mode) == ("gpt-x", "oai", "standard")
    assert (stream.tokens_in, stream.tokens_out) == (ANSWER.prompt_tokens, ANSWER.completion_tokens)
    assert stream.attempts == 1 and stream.completed is True
    assert 0 <= stream.overhead_ms <= stream.ttft_ms <= stream.latency_ms
    assert stream.bytes_sent > 0 and stream.client.startswith("127.0.0.1:")
    assert stream.bytes_received == len(json.dumps(chat_body("gpt-x", stream=True, usage=True)))
    assert stream.trace_id is None  # tracing is off
    assert "model=gpt-x provider=oai stream_mode=standard" in stream.getMessage()

    assert (answer.provider, answer.stream_mode, answer.ttft_ms) == ("claude", "never", None)
    assert answer.tokens_in == 23 and answer.tokens_out == 5
    assert 0 <= answer.overhead_ms <= answer.latency_ms

    assert (health.path, health.status, health.model, health.provider) == ("/health", 503, None,
                                                                           None)
    assert health.bytes_received == 0
    assert "model=- provider=-" in health.getMessage()


def test_errors_and_departures_are_logged(run, logs: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with gateway() as (_, port, fake_openai, _):
            await request(port, "POST", CHAT, {"model": 'evil"\nmodel', "messages": [
                {"role": "user", "content": "hi"}]})
            await request(port, "POST", CHAT, {"model": "mock", "messages": []})
            fake_openai.faults.extend(["500", "500", "500"])
            await request(port, "POST", CHAT, chat_body("gpt-x", stream=False))

    run(main())
    unknown, invalid, failed = access(logs)
    assert unknown.status == 404 and unknown.model == 'evil"\nmodel'
    assert 'model="evil\\"\\nmodel"' in unknown.getMessage()
    assert invalid.status == 400 and invalid.model is None
    assert (failed.status, failed.provider, failed.attempts) == (502, "oai", 3)
    assert failed.overhead_ms is None and failed.tokens_in is None


def test_no_secret_and_no_prompt_reaches_any_log(run, logs: pytest.LogCaptureFixture) -> None:
    auth = {"Authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY}

    async def main() -> None:
        async with gateway() as (_, port, fake_openai, _):
            for model in ("mock", "gpt-x", "claude-x"):
                for stream in (True, False):
                    await request(port, "POST", CHAT,
                                  chat_body(model, stream=stream, content=PROMPT), auth)
            fake_openai.faults.extend(["401", "400"])
            await request(port, "POST", CHAT, chat_body("gpt-x", stream=False, content=PROMPT),
                          auth)
            await request(port, "POST", CHAT, chat_body("gpt-x", stream=True, content=PROMPT),
                          auth)
            await request(port, "POST", f"{CHAT}?key={CLIENT_KEY}",
                          chat_body("mock", stream=False, content=PROMPT), auth)

    run(main())
    assert len(access(logs)) == 9
    for record in logs.records:
        rendered = record.getMessage() + json.dumps(vars(record), default=str)
        for secret in (CLIENT_KEY, UPSTREAM_KEY, ANTHROPIC_KEY, "hunter2"):
            assert secret not in rendered, (record.name, rendered)


def test_nothing_is_built_when_the_access_logger_is_off(run, logs: pytest.LogCaptureFixture) -> None:
    logging.getLogger("modelmux.access").setLevel(logging.WARNING)
    try:
        async def main() -> None:
            async with gateway() as (_, port, _, _):
                await request(port, "POST", CHAT, chat_body("mock", stream=False))

        run(main())
    finally:
        logging.getLogger("modelmux.access").setLevel(logging.NOTSET)
    assert access(logs) == []


def test_access_log_setting_turns_the_line_off(run, logs: pytest.LogCaptureFixture) -> None:
    from modelmux.api.app import App
    from modelmux.config.providers import MockProviderConfig
    from modelmux.config.schema import Config, LoggingConfig

    off = App(Config(logging=LoggingConfig(access_log=False),
                     provider=[MockProviderConfig(name="m", models=["m"])]))
    assert off.access_log.enabled is False

    async def main() -> None:
        async with gateway() as (app, port, _, _):
            app.access_log.enabled = False
            await request(port, "POST", CHAT, chat_body("mock", stream=False))

    run(main())
    assert access(logs) == []
