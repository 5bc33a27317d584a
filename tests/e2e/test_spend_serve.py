"""Cost per request through a real ``modelmux serve``, the official openai SDK as the client and a
fake OpenAI-compatible upstream that reports known usage (cached tokens included)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.proc import ServeProcess, serve_config
from tests.e2e.threaded import threaded
from tests.fakes.answers import Answer
from tests.fakes.claude import FakeClaude
from tests.fakes.openai import FakeOpenAI

ANSWER = Answer(text="costed hello", prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
PRICES = {"input": 2.0, "output": 8.0, "cached": 0.5}
EXPECTED = (600 * 2.0 + 400 * 0.5 + 200 * 8.0) / 1e6  # 0.003 USD


def config(origin: str) -> str:
    return f"""
[[provider]]
name = "up"
type = "openai_compatible"
base_url = "{origin}/v1"
models = ["priced-model", "free-model"]

[[prices]]
model = "priced-model"
input_per_mtok = {PRICES["input"]}
output_per_mtok = {PRICES["output"]}
cached_input_per_mtok = {PRICES["cached"]}

[analytics.cost_tracking]
enabled = true
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServeProcess, FakeOpenAI]]:
    with threaded(FakeOpenAI(answer=ANSWER)) as upstream:
        proc = serve_config(tmp_path, config(upstream.origin))
        try:
            yield proc, upstream
        finally:
            assert proc.stop() == 0


def sdk(proc: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=10)


def access_lines(proc: ServeProcess) -> list[str]:
    return [line for line in proc.lines if "modelmux.access" in line and " path=/v1/" in line]


def wait_lines(proc: ServeProcess, needle: str, count: int, timeout: float = 10.0) -> list[str]:
    """The access lines with ``needle`` once there are ``count`` (the log is buffered)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in access_lines(proc) if needle in line]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_cost_header_is_usage_times_price(served: tuple[ServeProcess, FakeOpenAI]) -> None:
    proc, _ = served
    messages = [{"role": "user", "content": "hi"}]
    with sdk(proc) as client:
        raw = client.chat.completions.with_raw_response.create(model="priced-model",
                                                               messages=messages)
        completion = raw.parse()
        assert completion.usage is not None and completion.usage.prompt_tokens == 1000
        assert float(raw.headers["x-modelmux-cost-usd"]) == pytest.approx(EXPECTED)
        unpriced = client.chat.completions.with_raw_response.create(model="free-model",
                                                                    messages=messages)
        assert "x-modelmux-cost-usd" not in unpriced.headers  # unknown, not 0
    assert proc.wait_for_log("no price for model 'free-model'")
    assert proc.wait_for_log("cost_usd=0.003 ")
    assert sum("no price for model" in line for line in proc.lines) == 1
    with urllib.request.urlopen(proc.url + "/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    line = next(m for m in metrics.splitlines() if m.startswith("modelmux_cost_usd_total{"))
    assert 'provider="up"' in line and 'model="priced-model"' in line
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(EXPECTED)


def test_stream_is_costed_without_showing_usage_the_client_did_not_ask_for(
        served: tuple[ServeProcess, FakeOpenAI]) -> None:
    proc, upstream = served
    with sdk(proc) as client:
        chunks = list(client.chat.completions.create(
            model="priced-model", messages=[{"role": "user", "content": "hi"}], stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
            ANSWER.text
        assert all(c.usage is None and c.choices for c in chunks)
        asked = json.loads(upstream.raw_bodies[-1])
        assert asked["stream_options"] == {"include_usage": True}
        # a client that asks gets the usage chunk as the provider sent it
        chunks = list(client.chat.completions.create(
            model="priced-model", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True}))
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 200
        legacy = list(client.completions.create(model="priced-model", prompt="hi",
                                                stream=True))
        assert "".join(c.choices[0].text for c in legacy if c.choices) == ANSWER.text
        assert all(c.usage is None and c.choices for c in legacy)
        assert json.loads(upstream.raw_bodies[-1])["stream_options"] == {"include_usage": True}
    streamed = wait_lines(proc, "stream_mode=standard", 3)
    assert len(streamed) == 3
    assert all("cost_usd=0.003 " in line for line in streamed)


CLAUDE = Answer(text="cached hello", prompt_tokens=1000, completion_tokens=200,
                cached_tokens=400, cache_write_tokens=100)
CLAUDE_COST = (500 * 3.0 + 400 * 0.3 + 100 * 3.75 + 200 * 15.0) / 1e6  # 0.004995 USD


def test_claude_cache_reads_and_writes_are_priced_on_both_doors(tmp_path: Path) -> None:
    import anthropic

    with threaded(FakeClaude(answer=CLAUDE, api_key="sk-ant-up")) as upstream:
        proc = serve_config(tmp_path, f"""
[[provider]]
name = "claude"
type = "anthropic"
base_url = "{upstream.origin}"
api_key = "sk-ant-up"
models = ["claude-x"]
max_retries = 0

[[prices]]
model = "claude-x"
input_per_mtok = 3.0
output_per_mtok = 15.0
cached_input_per_mtok = 0.3
cache_write_per_mtok = 3.75

[analytics.cost_tracking]
enabled = true
""")
        try:
            messages = [{"role": "user", "content": "hi"}]
            with sdk(proc) as client:
                raw = client.chat.completions.with_raw_response.create(model="claude-x",
                                                                       messages=messages)
                assert float(raw.headers["x-modelmux-cost-usd"]) == pytest.approx(CLAUDE_COST)
                chunks = list(client.chat.completions.create(model="claude-x",
                                                             messages=messages, stream=True))
                assert all(c.usage is None for c in chunks)
            with anthropic.Anthropic(base_url=proc.url, api_key="x", max_retries=0,
                                     timeout=10) as claude:
                native = claude.messages.with_raw_response.create(
                    model="claude-x", max_tokens=50, messages=messages)
                assert float(native.headers["x-modelmux-cost-usd"]) == \
                    pytest.approx(CLAUDE_COST)
                with claude.messages.stream(model="claude-x", max_tokens=50,
                                            messages=messages) as stream:
                    assert stream.get_final_text() == CLAUDE.text
            lines = wait_lines(proc, "provider=claude", 4)
            assert len(lines) == 4
            costs = [float(line.split("cost_usd=")[1].split()[0]) for line in lines]
            assert costs == pytest.approx([CLAUDE_COST] * 4)
        finally:
            assert proc.stop() == 0
