"""Two ``modelmux serve`` processes sharing one real Redis hold one global budget exactly:
requests alternate between them, and the fifth (whichever instance gets it) is refused."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
import redis

from modelmux.spend.periods import period_label
from tests.e2e.proc import ServeProcess, priced_upstream
from tests.e2e.threaded import threaded
from tests.fakes.answers import Answer
from tests.fakes.openai import FakeOpenAI
from tests.state.redis_server import RedisServer

COST = (1000 * 1.0 + 250 * 8.0) / 1e6  # 0.003 USD a request


def test_two_instances_on_redis_enforce_one_budget(tmp_path: Path,
                                                    redis_server: RedisServer) -> None:
    answer = Answer(text="hi", prompt_tokens=1000, completion_tokens=250)
    with threaded(FakeOpenAI(answer=answer)) as upstream:
        config = tmp_path / "config.toml"
        config.write_text(f"""
[server]
host = "127.0.0.1"
port = 0

{priced_upstream(upstream.origin)}
[analytics.cost_tracking]
monthly_budget = 0.01

[state]
backend = "redis"
url = "{redis_server.url}"
key_prefix = "e2e:"
""")
        hosts = [ServeProcess(["serve", "--config", str(config)], home=tmp_path / name)
                 for name in ("a", "b")]
        counter = redis.Redis(port=redis_server.port, socket_timeout=5)
        key = f"e2e:spend:global::{period_label('monthly', time.time())}"
        try:
            got = []
            for i in range(8):
                with openai.OpenAI(base_url=hosts[i % 2].url + "/v1", api_key="x",
                                   max_retries=0, timeout=10) as sdk:
                    try:
                        sdk.chat.completions.create(
                            model="priced", messages=[{"role": "user", "content": "hi"}])
                    except openai.RateLimitError as exc:
                        assert isinstance(exc.body, dict) and exc.body["code"] == "budget_exceeded"
                        got.append(429)
                        continue
                got.append(200)
                # counting follows the answer: wait for it to land before the next request
                expected = got.count(200) * COST
                deadline = time.monotonic() + 10
                while float(counter.get(key) or 0) < expected - 1e-12:
                    assert time.monotonic() < deadline, "the spend never reached Redis"
                    time.sleep(0.01)
            assert got == [200, 200, 200, 200, 429, 429, 429, 429]
            assert float(counter.get(key) or 0) == pytest.approx(4 * COST)
            assert len(upstream.raw_bodies) == 4
        finally:
            counter.close()
            for proc in hosts:
                assert proc.stop() == 0
