"""``modelmux serve`` with 1.x files and variables, log files, workers and invalid configs.

The 1.x tests run a fake Vertex AI and a fake Google token endpoint on loopback (in a thread
with its own event loop) and talk to the real server with the official OpenAI SDK.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest

from tests.cli.helpers import clean_env, run, service_account, user_config, write
from tests.e2e.proc import ServeProcess
from tests.e2e.test_serve import request
from tests.fakes.claude import FakeClaude
from tests.fakes.google_oauth import FakeGoogleOAuth

T = TypeVar("T")
MOCK = '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n'


class Fakes:
    """A fake Vertex AI and token endpoint served from a background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.oauth, self.vertex = self.call(self._start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    async def _start(self) -> tuple[FakeGoogleOAuth, FakeClaude]:
        oauth = await FakeGoogleOAuth().__aenter__()
        vertex = await FakeClaude(flavour="vertex", token_ok=oauth.valid).__aenter__()
        return oauth, vertex

    def close(self) -> None:
        self.call(self.vertex.__aexit__(None, None, None))
        self.call(self.oauth.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(20)
        self.loop.close()


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    started = Fakes()
    try:
        yield started
    finally:
        started.close()


def sdk(proc: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proc.url + "/v1", api_key="ignored", max_retries=0, timeout=20)


def ask(proc: ServeProcess, model: str, stream: bool = False) -> str:
    with sdk(proc) as client:
        messages: Any = [{"role": "user", "content": "hi"}]
        if stream:
            chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True))
            assert chunks[0].model == model
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        reply = client.chat.completions.create(model=model, messages=messages)
        assert reply.model == model
        return reply.choices[0].message.content or ""


def test_a_1x_config_file_serves_unchanged(tmp_path: Path, fakes: Fakes) -> None:
    key = write(tmp_path / "service-account.json", json.dumps(service_account(fakes.oauth.token_uri)))
    origin = fakes.vertex.origin
    write(user_config(tmp_path), f"""[server]
port = 0
log_level = "info"
enable_retries = false

[auth]
service_account_file = "{key}"

[streaming]

[vertex]
url = "{origin}/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
project = "proj"
location = "us-east5"
publisher = "anthropic"

[[vertex.models]]
name = "Opus"
model = "claude-opus-4@20250514"
""")
    proc = ServeProcess([], env=clean_env(tmp_path), home=tmp_path)  # a bare `modelmux`, as 1.x
    try:
        assert proc.host == "127.0.0.1"
        assert any("1.x format" in line for line in proc.lines)
        status, _, body = request(proc, "GET", "/v1/models")
        assert status == 200
        assert [m["id"] for m in json.loads(body)["data"]][:2] == ["claude-sonnet-4", "Opus"]
        assert ask(proc, "opus") and ask(proc, "OPUS", stream=True)
        assert ask(proc, "claude-sonnet-4") and ask(proc, "gpt-4o")
        models = [path["model"] for path in fakes.vertex.paths]
        assert models == ["claude-opus-4@20250514", "claude-opus-4@20250514",
                          "claude-sonnet-4@20250514", "claude-sonnet-4@20250514"]
        assert {path["project"] for path in fakes.vertex.paths} == {"proj"}
    finally:
        assert proc.stop() == 0


def test_1x_environment_variables_alone(tmp_path: Path, fakes: Fakes) -> None:
    key = base64.b64encode(json.dumps(service_account(fakes.oauth.token_uri)).encode()).decode()
    url = f"{fakes.vertex.origin}/v1/projects/p/locations/global/publishers/anthropic/models/m@1"
    env = clean_env(tmp_path, LLM_PROVIDER="vertex", LLM_URL=url, GCP_SERVICE_ACCOUNT_KEY=key,
                    LLM_MODEL_DISPLAY_NAME="house-model", PORT="0")
    proc = ServeProcess(["serve"], env=env, home=tmp_path)
    try:
        assert "no config file found" in proc.lines[0] and "environment" in proc.lines[0]
        assert ask(proc, "house-model", stream=True)
        assert fakes.vertex.paths[-1]["model"] == "m@1"
        deprecated = [line for line in proc.lines if "(deprecated)" in line]
        assert any("GCP_SERVICE_ACCOUNT_KEY" in line for line in deprecated)
        assert any("PORT" in line for line in deprecated)
    finally:
        assert proc.stop() == 0


def test_the_log_file_gets_the_log_and_logs_reads_it(tmp_path: Path) -> None:
    write(user_config(tmp_path), '[server]\nport = 0\n[logging]\nfile = "~/state/mm.log"\n' + MOCK)
    proc = ServeProcess([], env=clean_env(tmp_path), home=tmp_path)
    try:
        assert proc.wait_for_log("implementation")
        assert request(proc, "GET", "/health")[0] == 200
    finally:
        assert proc.stop() == 0
    assert "listening on http://127.0.0.1:" in (tmp_path / "state/mm.log").read_text()
    shown = run(tmp_path, "logs")
    assert shown.returncode == 0 and "listening on" in shown.stdout


def test_workers_load_the_same_layers_and_warn_once(tmp_path: Path) -> None:
    write(user_config(tmp_path), "[server]\nport = 0\nworkers = 2\n" + MOCK)
    env = clean_env(tmp_path, LOG_LEVEL="info", MODELMUX_SERVER_HOST="127.0.0.1")
    proc = ServeProcess(["serve"], env=env, home=tmp_path)
    try:
        assert proc.wait_for_log("worker serving")
        assert request(proc, "GET", "/v1/models")[0] == 200
    finally:
        assert proc.stop() == 0
    assert sum("LOG_LEVEL" in line and "deprecated" in line for line in proc.lines) == 1


def test_an_invalid_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", '[server]\nprot = 1\n[logging]\nlevel = "loud"\n' + MOCK
                   + 'api_key = "x"\n')
    out = run(tmp_path, "serve", "--config", str(config), "--port", "70000")
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    (head,) = [n for n, line in enumerate(lines) if "invalid configuration" in line]
    assert lines[head].endswith("]: invalid configuration: 4 problems")
    problems = [line.split("]: ", 1)[1] for line in lines[head + 1:head + 5]]
    assert problems[0].startswith(f"  {config}:2: server.prot: unknown field `prot`")
    assert problems[1].startswith(f"  {config}:4: logging.level")
    assert problems[2].startswith(f"  {config}:9: provider[0].api_key: unknown field `api_key`")
    assert problems[3].startswith("  command line --port: server.port: expected a port in 0-65535")
    assert "\\n" not in out.stderr  # no problem list escaped into one line
