"""``modelmux serve`` with a routing config, as a user runs it: groups, rules, admin, limits.

Mock deployments only (the scripted-fault behaviour is covered in tests/routing/ in-process);
this checks the config is read, validated and applied by the real process, including the
split of rate limits across ``--workers``.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import openai

from tests.e2e.proc import ServeProcess

CONFIG = """\
[server]
port = 0
workers = {workers}

[[provider]]
name = "one"
type = "mock"
models = []
text = "from one"
chunks = 1

[[provider]]
name = "two"
type = "mock"
models = []
text = "from two"
chunks = 1

[routing]
queue_timeout_ms = 0

[[routing.group]]
name = "chat"
strategy = "round_robin"
deployments = [{{ provider = "one", model = "m1" }}, {{ provider = "two", model = "m2" }}]

[[routing.group]]
name = "scarce"
deployments = [{{ provider = "one", model = "s", rpm = 2 }}]

[[routing.rules]]
when = 'header("x-pin") == "two"'
provider = "two"

[admin]
key = "sesame"
"""


def _get(proc: ServeProcess, path: str, key: str | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        headers = {"connection": "close", **({"authorization": f"Bearer {key}"} if key else {})}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _ask(sdk: openai.OpenAI, model: str, **extra: Any) -> tuple[str, str]:
    raw = sdk.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], **extra)
    return raw.parse().choices[0].message.content or "", raw.headers["x-modelmux-provider"]


def test_serve_routes_by_group_and_rule_and_shows_admin_state(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(workers=1))
    proc = ServeProcess(["serve", "--config", str(config)], home=tmp_path)
    try:
        with openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0,
                           timeout=10) as sdk:
            served = [_ask(sdk, "chat")[1] for _ in range(4)]
            assert served == ["one", "two", "one", "two"]
            pinned = {"extra_headers": {"x-pin": "two"}}
            assert [_ask(sdk, "chat", **pinned) for _ in range(2)] == [("from two", "two")] * 2
            assert [_ask(sdk, "scarce")[1] for _ in range(2)] == ["one", "one"]
            try:
                _ask(sdk, "scarce")
            except openai.RateLimitError as exc:
                assert exc.response.headers["retry-after"] == "30"
            else:
                raise AssertionError("a third request within the minute was let through")
        status, listed = _get(proc, "/v1/models")
        assert status == 200 and [m["id"] for m in listed["data"]] == ["chat", "scarce"]
        assert _get(proc, "/admin/providers")[0] == 401
        status, admin = _get(proc, "/admin/providers", "sesame")
        assert status == 200
        ids = [d["id"] for p in admin["data"] for d in p["deployments"]]
        assert ids == ["one/m1", "one/s", "two/m2"]
    finally:
        assert proc.stop() == 0


def test_workers_split_a_deployments_rpm_so_together_they_never_exceed_it(
        tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(workers=2))
    proc = ServeProcess(["serve", "--config", str(config)], home=tmp_path)
    try:
        assert proc.wait_for_log("2 workers ready")
        _, admin = _get(proc, "/admin/providers", "sesame")  # whichever worker answers
        (scarce,) = [d for p in admin["data"] for d in p["deployments"] if d["id"] == "one/s"]
        assert (scarce["limits"]["rpm"], scarce["limits"]["rpm_available"]) == (2, 1.0)
        ok = limited = 0
        for _ in range(6):  # a fresh client (connection) each time, so both workers get some
            with openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0,
                               timeout=10) as sdk:
                try:
                    _ask(sdk, "scarce")
                    ok += 1
                except openai.RateLimitError:
                    limited += 1
        assert 1 <= ok <= 2 and ok + limited == 6  # rpm = 2 across both workers
    finally:
        assert proc.stop() == 0
