"""``modelmux serve`` with ``[cache]`` on, as users call it: the official ``openai`` SDK (a hit
after a miss, a replayed stream equal to the original with tool calls and usage,
``no-store``/``no-cache``), the ``anthropic`` SDK on the Messages door, the admin API and
``modelmux cache stats|clear``; two servers sharing a Redis-backed cache."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.proc import ServeProcess, modelmux_command, serve_config
from tests.state.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]

CONFIG = """
[[provider]]
name = "demo"
type = "mock"
models = ["mock", "claude-sonnet-4-5"]
text = "It is sunny."
chunks = 4

[cache]
enabled = true

[admin]
key = "sesame"
"""
WEATHER: Any = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
MESSAGES: Any = [{"role": "user", "content": "Weather in Oslo?"}]


class Served:
    def __init__(self, proc: ServeProcess, socket: Path) -> None:
        self.proc, self.socket = proc, socket
        self.sdk = openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0,
                                 timeout=10)

    def cli(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*modelmux_command(), "cache", action, "--control-socket",
                               str(self.socket)], capture_output=True, text=True, timeout=30,
                              check=False)

    def admin(self, method: str) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(self.proc.host, self.proc.port, timeout=10)
        try:
            conn.request(method, "/admin/cache", headers={"authorization": "Bearer sesame"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home: Path = tmp_path_factory.mktemp("home")
    path = home / "config.toml"
    path.write_text('[server]\nhost = "127.0.0.1"\nport = 0\n' + CONFIG)
    socket = home / "control.sock"
    proc = ServeProcess(["serve", "--config", str(path), "--control-socket", str(socket)],
                        home=home)
    try:
        yield Served(proc, socket)
    finally:
        assert proc.stop() == 0


def cache_of(raw: Any) -> str:
    return str(raw.headers["x-modelmux-cache"])


def test_a_hit_after_a_miss(served: Served) -> None:
    ask = served.sdk.chat.completions.with_raw_response.create
    first = ask(model="mock", messages=[{"role": "user", "content": "one"}], temperature=0)
    second = ask(model="mock", messages=[{"role": "user", "content": "one"}], temperature=0)
    assert (cache_of(first), cache_of(second)) == ("miss", "hit")
    one, two = first.parse(), second.parse()
    assert two.id == one.id and two.choices[0].message.content == "It is sunny."
    assert two.usage == one.usage


def collect(stream: Any) -> tuple[str, dict[int, dict[str, str]], str | None, Any, str]:
    """Text, tool calls by index, finish reason, usage and the completion id of a stream."""
    text, calls, finish, usage, ident = "", {}, None, None, ""
    for chunk in stream:
        ident = chunk.id
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += delta.function.name or "" if delta.function else ""
                call["arguments"] += delta.function.arguments or "" if delta.function else ""
    return text, calls, finish, usage, ident


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool-call"])
def test_a_replayed_stream_equals_the_original(served: Served, tools: bool) -> None:
    extra: dict[str, Any] = {"tools": [WEATHER]} if tools else {}
    create = served.sdk.chat.completions.with_raw_response.create
    answers = []
    for expected in ("miss", "hit"):
        raw = create(model="mock", messages=MESSAGES, stream=True,
                     stream_options={"include_usage": True}, **extra)
        assert cache_of(raw) == expected
        answers.append(collect(raw.parse()))
    original, replay = answers
    assert replay == original
    text, calls, finish, usage, _ = replay
    assert usage is not None and usage.completion_tokens > 0
    if tools:
        assert finish == "tool_calls" and calls[0]["name"] == "weather"
        assert json.loads(calls[0]["arguments"])["city"]
    else:
        assert finish == "stop" and text == "It is sunny."


def test_no_store_and_no_cache(served: Served) -> None:
    create = served.sdk.chat.completions.with_raw_response.create
    body: Any = {"model": "mock", "messages": [{"role": "user", "content": "fresh"}]}
    skip = create(**body, extra_headers={"Cache-Control": "no-store"})
    assert cache_of(skip) == "bypass"
    assert cache_of(create(**body)) == "miss"  # no-store kept nothing
    refreshed = create(**body, extra_headers={"Cache-Control": "no-cache"})
    assert cache_of(refreshed) == "miss"
    again = create(**body)
    assert cache_of(again) == "hit" and again.parse().id == refreshed.parse().id
    with pytest.raises(openai.BadRequestError) as caught:
        create(**body, extra_headers={"x-modelmux-cache-ttl": "-3"})
    assert caught.value.body["param"] == "x-modelmux-cache-ttl"  # type: ignore[index]


def test_the_messages_door_replays_its_stream(served: Served) -> None:
    weather = {"name": "weather", "input_schema": WEATHER["function"]["parameters"]}
    with anthropic.Anthropic(base_url=served.proc.url, api_key="unused", max_retries=0,
                             timeout=10) as sdk:
        finals, events = [], []
        for expected in ("miss", "hit"):
            with sdk.messages.stream(
                    model="claude-sonnet-4-5", max_tokens=100, messages=MESSAGES,
                    tools=[weather]) as stream:
                assert stream.response.headers["x-modelmux-cache"] == expected
                seen = [event.type for event in stream]
                finals.append(stream.get_final_message())
                events.append(seen)
        assert events[0] == events[1] and "message_stop" in events[1]
        original, replay = finals
        assert replay.model_dump() == original.model_dump()
        assert replay.stop_reason == "tool_use" and replay.content[0].type == "tool_use"
        assert replay.usage.output_tokens > 0
        plain = [sdk.messages.with_raw_response.create(
            model="claude-sonnet-4-5", max_tokens=50, messages=MESSAGES) for _ in range(2)]
        assert [raw.headers["x-modelmux-cache"] for raw in plain] == ["miss", "hit"]
        assert plain[1].parse().model_dump() == plain[0].parse().model_dump()


def test_stats_and_clear_by_admin_api_and_cli(served: Served) -> None:
    create = served.sdk.chat.completions.with_raw_response.create
    create(model="mock", messages=[{"role": "user", "content": "to clear"}])
    status, stats = served.admin("GET")
    assert status == 200 and stats["backend"] == "memory" and stats["entries"] >= 1
    shown = served.cli("stats")
    assert shown.returncode == 0 and "entries:" in shown.stdout, shown.stderr
    cleared = served.cli("clear")
    assert cleared.returncode == 0 and "cleared" in cleared.stdout
    assert served.admin("GET")[1]["entries"] == 0
    assert cache_of(create(model="mock", messages=[{"role": "user", "content": "to clear"}])
                    ) == "miss"
    status, body = served.admin("DELETE")
    assert status == 200 and body == {"cleared": 1}


def test_two_servers_share_a_redis_cache(tmp_path: Path, redis_server: RedisServer) -> None:
    config = CONFIG.replace('[cache]\nenabled = true', '[cache]\nenabled = true\n'
                            'backend = "redis"') + f'\n[state]\nurl = "{redis_server.url}"\n'
    procs = []
    try:
        for name in ("one", "two"):
            home = tmp_path / name
            home.mkdir()
            procs.append(serve_config(home, config))
        first, second = (openai.OpenAI(base_url=proc.url + "/v1", api_key="unused",
                                       max_retries=0, timeout=10) for proc in procs)
        body: Any = {"model": "mock", "messages": [{"role": "user", "content": "shared"}]}
        miss = first.chat.completions.with_raw_response.create(**body)
        assert cache_of(miss) == "miss"
        hit = None
        for _ in range(50):  # the store is written to Redis just after the answer: bounded
            hit = second.chat.completions.with_raw_response.create(**body)
            if cache_of(hit) == "hit":
                break
        assert hit is not None and cache_of(hit) == "hit"
        assert hit.parse().id == miss.parse().id
    finally:
        for proc in procs:
            assert proc.stop() == 0
