"""Claude Code itself (the ``@anthropic-ai/claude-code`` npm package, a pinned version) driven
in print mode against a real ``modelmux serve``: once on the mock through a ``[models]`` alias
with ``[auth]`` on and the key in ``ANTHROPIC_AUTH_TOKEN`` (every request translated, a tool
call refused by Claude Code and answered with a tool_result), once on a fake Anthropic
upstream (every request native: its beta header, system blocks, cache_control, thinking and
tools reach the upstream as Claude Code sent them).

The package is installed once into a cache directory (``MODELMUX_TEST_CACHE``, else
``~/.cache/modelmux-tests``) with ``npm install``; it runs offline once installed. The test is
skipped only when node or npm is missing; CI installs both (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.proc import serve_config
from tests.e2e.test_auth_serve import Upstreams
from tests.fakes.answers import TEXT

VERSION = "2.1.100"
"""A release whose package is one JavaScript file (later ones ship per-platform binaries)."""
PACKAGE = f"@anthropic-ai/claude-code@{VERSION}"
RUN_TIMEOUT = 120.0


def _cache_root() -> Path:
    root = os.environ.get("MODELMUX_TEST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "modelmux-tests"


@pytest.fixture(scope="module")
def claude_cli() -> Path:
    """The installed ``cli.js`` of ``PACKAGE`` (installed into the cache when missing)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run Claude Code (CI installs nodejs and npm)")
    target = _cache_root() / f"claude-code-{VERSION}"
    cli = target / "node_modules" / "@anthropic-ai" / "claude-code" / "cli.js"
    if not cli.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".install-"))
        subprocess.run(["npm", "install", "--prefix", str(staging), "--no-audit", "--no-fund",
                        "--omit=optional", "--ignore-scripts", "--no-save", PACKAGE],
                       check=True, timeout=600, stdout=subprocess.DEVNULL)
        try:
            staging.rename(target)  # whole or not at all, should two runs race
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    assert cli.exists(), f"npm did not install {PACKAGE}"
    return cli


def run_claude(cli: Path, base_url: str, home: Path, prompt: str,
               credential: tuple[str, str] = ("ANTHROPIC_API_KEY", "sk-client-unused")
               ) -> dict[str, Any]:
    """``claude -p PROMPT --output-format json`` against ``base_url``; its result document.
    ``credential`` is the variable Claude Code reads its key from, and the key."""
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
           "ANTHROPIC_BASE_URL": base_url, credential[0]: credential[1],
           "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    done = subprocess.run(["node", str(cli), "-p", prompt, "--output-format", "json"], check=False,
                          env=env, cwd=home, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, (done.stdout, done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


MASTER = "sk-master-claude-code-0123456789"
MOCK = """
[auth]
mode = "keys"
master_key = "%s"
sqlite_path = "%s"

[[provider]]
name = "demo"
type = "mock"
models = ["mock"]
text = "It is sunny."

[models]
"*" = "mock"
"""


def test_claude_code_on_the_mock_through_a_models_alias(claude_cli: Path,
                                                         tmp_path: Path) -> None:
    proc = serve_config(tmp_path, MOCK % (MASTER, tmp_path / "keys.db"))
    try:
        result = run_claude(claude_cli, proc.url, tmp_path / "work", "What is the weather?",
                            ("ANTHROPIC_AUTH_TOKEN", MASTER))
    finally:
        assert proc.stop() == 0
    assert result["is_error"] is False and result["subtype"] == "success"
    assert result["result"] == "It is sunny."
    # the mock asked for a tool first; Claude Code refused it and sent the refusal back
    assert result["num_turns"] >= 2 and result["permission_denials"]
    served = [line for line in proc.lines if "path=/v1/messages" in line]
    assert len(served) >= 2 and all("status=200" in line for line in served), proc.lines


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    try:
        yield ups
    finally:
        ups.close()


def test_claude_code_on_anthropic_goes_through_natively(claude_cli: Path, tmp_path: Path,
                                                        upstreams: Upstreams) -> None:
    claude = upstreams.claude
    config = f"""
[[provider]]
name = "claude"
type = "anthropic"
api_key = "sk-ant-upstream"
base_url = "{claude.origin}"
models = ["sonnet"]

[models]
"*" = "sonnet"
"""
    proc = serve_config(tmp_path, config)
    try:
        result = run_claude(claude_cli, proc.url, tmp_path / "work", "Say hello.")
    finally:
        assert proc.stop() == 0
    assert result["is_error"] is False and result["result"] == TEXT.text
    asked = [r for r in claude.requests if r.path == "/v1/messages"]
    assert asked
    for request in asked:
        headers = request.headers
        assert headers["x-api-key"] == "sk-ant-upstream"
        assert headers["anthropic-version"] == "2023-06-01"
        assert "sk-client-unused" not in json.dumps(headers)
        body = request.json()
        assert body["model"] == "sonnet"
    main = max(asked, key=lambda r: len(r.body))  # the agent turn, not a side query
    body = main.json()
    assert main.headers.get("anthropic-beta")  # Claude Code's betas, passed on
    assert body["stream"] is True and body["tools"] and isinstance(body["system"], list)
    assert "cache_control" in main.body.decode()  # kept, not dropped
    assert "thinking" in body and "metadata" in body
