"""Two ``modelmux serve`` processes (two hosts, two workers each) sharing one real Redis:
a deployment's rpm holds across all four worker processes, not 1/N of it per worker."""

from __future__ import annotations

from pathlib import Path

import openai

from tests.e2e.proc import ServeProcess
from tests.state.redis_server import RedisServer

CONFIG = """\
[server]
port = 0
workers = 2

[[provider]]
name = "one"
type = "mock"
models = []
chunks = 1

[routing]
queue_timeout_ms = 0

[[routing.group]]
name = "scarce"
deployments = [{{ provider = "one", model = "s", rpm = 3 }}]

[state]
backend = "redis"
url = "{url}"
key_prefix = "e2e:"
"""


def test_two_serve_processes_with_workers_share_one_rpm(
        tmp_path: Path, redis_server: RedisServer) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(url=redis_server.url))
    hosts = [ServeProcess(["serve", "--config", str(config)], home=tmp_path / name)
             for name in ("a", "b")]
    try:
        for proc in hosts:
            assert proc.wait_for_log("2 workers ready")
        got = []
        for i in range(10):  # a fresh client each time, so every worker of both hosts gets some
            with openai.OpenAI(base_url=hosts[i % 2].url + "/v1", api_key="x", max_retries=0,
                               timeout=10) as sdk:
                try:
                    sdk.chat.completions.create(model="scarce",
                                                messages=[{"role": "user", "content": "hi"}])
                    got.append(200)
                except openai.RateLimitError:
                    got.append(429)
        # 3 in all (split per worker, four processes would allow up to 6); a 4th only if
        # the test ran for over 20 s and the bucket refilled one.
        assert 3 <= got.count(200) <= 4 and got.count(429) == 10 - got.count(200), got
    finally:
        for proc in hosts:
            assert proc.stop() == 0
