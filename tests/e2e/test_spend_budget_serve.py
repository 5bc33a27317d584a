"""The spend log, the global budget and its alerts through a real ``modelmux serve``: a fake
OpenAI-compatible upstream with known usage, a loopback webhook receiver and a loopback SMTP
server; the usage API, the CLI and the SQLite spend log agree."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import anthropic
import openai
import pytest

from tests.e2e.proc import ServeProcess, modelmux_command, priced_upstream, serve_config
from tests.e2e.threaded import threaded
from tests.fakes.answers import Answer
from tests.fakes.openai import FakeOpenAI
from tests.fakes.smtp import FakeSMTP
from tests.fakes.webhook import Webhook

ANSWER = Answer(text="hello", prompt_tokens=1000, completion_tokens=250)
COST = (1000 * 1.0 + 250 * 8.0) / 1e6  # 0.003 USD a request
BUDGET = 0.01  # spent after 4 requests; alerts at 0.005 (2nd) and 0.01 (4th)
ADMIN = "admin-secret-key"


def config(upstream: str, webhook: str, smtp_port: int, db: Path) -> str:
    return f"""
[auth]
sqlite_path = "{db}"

{priced_upstream(upstream)}
[admin]
key = "{ADMIN}"

[analytics]
spend_log = true

[analytics.cost_tracking]
monthly_budget = {BUDGET}
alert_at = 0.5
alert_webhook = "{webhook}/hook"
alert_email = ["ops@example.com"]

[analytics.smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "modelmux@example.com"
"""


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def admin_get(proc: ServeProcess, path: str) -> tuple[int, bytes]:
    request = urllib.request.Request(proc.url + path,
                                     headers={"authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.read()


def test_global_budget_alerts_spend_log_usage_api_and_cli(tmp_path: Path) -> None:
    with threaded(FakeOpenAI(answer=ANSWER)) as upstream, threaded(Webhook()) as hook, \
            threaded(FakeSMTP()) as smtp:
        db = tmp_path / "spend.db"
        proc = serve_config(tmp_path, config(upstream.origin, hook.origin, smtp.port, db))
        try:
            with openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0,
                               timeout=10) as sdk:
                for _ in range(4):
                    raw = sdk.chat.completions.with_raw_response.create(
                        model="priced", messages=[{"role": "user", "content": "hi"}])
                    assert float(raw.headers["x-modelmux-cost-usd"]) == pytest.approx(COST)
                with pytest.raises(openai.RateLimitError) as refused:
                    sdk.chat.completions.create(model="priced",
                                                messages=[{"role": "user", "content": "hi"}])
            error = refused.value.body
            assert isinstance(error, dict)
            assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
            assert len(upstream.raw_bodies) == 4  # the refused one never went upstream
            with anthropic.Anthropic(base_url=proc.url, api_key="x", max_retries=0,
                                     timeout=10) as claude:
                with pytest.raises(anthropic.RateLimitError) as messages_refused:
                    claude.messages.create(model="priced", max_tokens=10,
                                           messages=[{"role": "user", "content": "hi"}])
            body = messages_refused.value.body
            assert isinstance(body, dict) and body["type"] == "error"
            assert "budget" in body["error"]["message"]

            assert until(lambda: len(hook.received) >= 2 and len(smtp.messages) >= 2)
            assert [a["threshold"] for a in hook.received] == [0.5, 1.0]
            assert all(a["scope"] == "global" and a["budget"] == BUDGET and
                       a["period"] == "monthly" for a in hook.received)
            assert hook.received[1]["spent"] == pytest.approx(4 * COST)
            assert sorted("at 50%" in m["Subject"] for m in smtp.messages) == [False, True]
            assert all(m["To"] == "ops@example.com" for m in smtp.messages)

            status, body_json = admin_get(proc, "/admin/usage?group_by=model&since=1d")
            assert status == 200
            api = json.loads(body_json)["data"]
            assert [(r["group"], r["requests"], r["input_tokens"], r["output_tokens"])
                    for r in api] == [("priced", 4, 4000, 1000)]
            assert api[0]["cost_usd"] == pytest.approx(4 * COST)
            _, csv_body = admin_get(proc, "/admin/usage?group_by=provider&format=csv")
            assert csv_body.decode().splitlines()[1].startswith("up,4,4000,1000,")
            for bad in ("group_by=colour", "since=yesterday-ish", "format=xml"):
                with pytest.raises(urllib.error.HTTPError) as refused_query:
                    admin_get(proc, "/admin/usage?" + bad)
                assert refused_query.value.code == 400
                error = json.loads(refused_query.value.read())["error"]
                assert error["type"] == "invalid_request_error" and error["param"] == \
                    bad.split("=")[0]
        finally:
            assert proc.stop() == 0
    assert len(hook.received) == 2 and len(smtp.messages) == 2  # one per threshold

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT model, provider, input_tokens, output_tokens, cost_usd, "
                            "status FROM spend_log").fetchall()
    assert len(rows) == 4  # the refused requests reached no deployment: no row
    assert all(r[:4] == ("priced", "up", 1000, 250) and r[5] == 200 for r in rows)
    assert sum(r[4] for r in rows) == pytest.approx(4 * COST)

    cli = subprocess.run(
        [*modelmux_command(), "usage", "--by", "model", "--since", "1d", "--format", "json",
         "--config", str(tmp_path / "config.toml")],
        capture_output=True, text=True, timeout=60,
        env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config"),
             "PATH": "/usr/bin:/bin"})
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["data"] == api
