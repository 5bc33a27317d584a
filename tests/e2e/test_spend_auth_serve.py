"""Budgets of keys and teams through a real ``modelmux serve`` with ``[auth] mode = "keys"``:
the official openai SDK as the client, keys and teams made through the admin API, the spend
log (kept by default with auth) read back per team and per key."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess, priced_upstream
from tests.e2e.threaded import threaded
from tests.fakes.answers import Answer
from tests.fakes.openai import FakeOpenAI

MASTER = "mm-master-5pend-0c1d9b2a"
ANSWER = Answer(text="hi", prompt_tokens=1000, completion_tokens=250)
COST = (1000 * 1.0 + 250 * 8.0) / 1e6  # 0.003 USD a request


def call(proc: ServeProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                     headers={"content-type": "application/json",
                              "authorization": f"Bearer {MASTER}"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def ask(proc: ServeProcess, key: str) -> int:
    with openai.OpenAI(base_url=proc.url + "/v1", api_key=key, max_retries=0,
                       timeout=10) as sdk:
        try:
            sdk.chat.completions.create(model="priced",
                                        messages=[{"role": "user", "content": "hi"}])
        except openai.RateLimitError as exc:
            assert exc.code == "budget_exceeded" and isinstance(exc.body, dict)
            assert exc.body["type"] == "insufficient_quota"
            return 429
    return 200


def test_key_and_team_budgets_stop_their_requests(tmp_path: Path) -> None:
    with threaded(FakeOpenAI(answer=ANSWER)) as upstream:
        path = tmp_path / "config.toml"
        path.write_text(LOOPBACK_SERVER + f"""
[auth]
mode = "keys"
master_key = "{MASTER}"
sqlite_path = "{tmp_path / 'mm.db'}"

{priced_upstream(upstream.origin)}""")
        proc = ServeProcess(["serve", "--config", str(path)], home=tmp_path)
        try:
            status, team = call(proc, "POST", "/admin/teams",
                                {"name": "research", "max_budget_usd": 2 * COST,
                                 "budget_period": "monthly"})
            assert status == 201, team
            _, first = call(proc, "POST", "/admin/keys", {"name": "r1", "team": "research"})
            _, second = call(proc, "POST", "/admin/keys", {"name": "r2", "team": "research"})
            _, solo = call(proc, "POST", "/admin/keys", {"name": "solo",
                                                         "max_budget_usd": COST,
                                                         "budget_period": "daily"})
            assert [ask(proc, solo["key"]) for _ in range(2)] == [200, 429]
            assert [ask(proc, first["key"]) for _ in range(3)] == [200, 200, 429]
            assert ask(proc, second["key"]) == 429  # the team's budget, not the key's
            assert len(upstream.raw_bodies) == 3

            status, usage = call(proc, "GET", "/admin/usage?group_by=team")
            assert status == 200
            by_team = {row["group"]: row for row in usage["data"]}
            assert by_team[team["id"]]["requests"] == 2
            assert by_team[team["id"]]["cost_usd"] == pytest.approx(2 * COST)
            assert by_team[None]["requests"] == 1
            _, usage = call(proc, "GET", "/admin/usage?group_by=key")
            by_key = {row["group"]: row["requests"] for row in usage["data"]}
            assert by_key == {first["id"]: 2, solo["id"]: 1}
        finally:
            assert proc.stop() == 0
