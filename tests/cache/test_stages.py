"""The cache stages in a real App on loopback in front of the fake OpenAI server: hit after
miss with no upstream call, what is never stored (errors, cut streams, filtered answers),
the rules, per-tenant namespaces and single flight."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from modelmux.api.app import App
from modelmux.codec.sse import SSEDecoder
from modelmux.config.features import CacheConfig, CacheRule
from modelmux.config.providers import AnthropicConfig, OpenAICompatibleConfig
from modelmux.config.schema import AdminConfig, Config
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline, Stage
from modelmux.tenancy.records import Identity, Key, Team
from tests.api.helpers import chat, payloads, post
from tests.fakes.answers import Answer, ToolCall
from tests.fakes.claude import FakeClaude
from tests.fakes.http import Reply, Request, json_reply, random_pieces
from tests.fakes.openai import FakeOpenAI, completion_json
from tests.server.helpers import DEADLINE, read_response, running

ANSWER = Answer(text="The cached fox. " * 3)


def config(origin: str, **cache: Any) -> Config:
    provider = OpenAICompatibleConfig(name="up", models=["gpt-x"], base_url=f"{origin}/v1")
    return Config(provider=[provider], cache=CacheConfig(enabled=True, **cache))


class TeamFromHeader(Stage):
    """Stands in for tenancy's authenticate stage: the caller's team from ``x-test-team``."""

    kind = "authenticate"
    name = "test-auth"

    async def on_request(self, ctx: RequestContext) -> None:
        team = ctx.header(b"x-test-team")
        if team is not None:
            name = team.decode()
            ctx.identity = Identity(kind="key", label=name, role="user", team=Team(
                id=name, name=name), key=Key(id="k-" + name, prefix="mm", hash="0", team_id=name))


@contextlib.asynccontextmanager
async def gateway(cfg: Config, *extra: Stage) -> AsyncIterator[tuple[App, int]]:
    app = App(cfg)
    if extra:
        app.pipeline = Pipeline([*app.pipeline.stages, *extra])
    try:
        async with running(app) as (_, port):
            yield app, port
    finally:
        await app.aclose()


def ask(stream: bool = False, **fields: Any) -> dict[str, Any]:
    payload = chat(stream=stream, model="gpt-x")
    payload.update(fields)
    return payload


def test_a_hit_calls_no_provider_and_returns_the_same_answer(run) -> None:
    async def main() -> None:
        async with FakeOpenAI(answer=ANSWER) as fake, gateway(config(fake.origin)) as (app, port):
            status, headers, first = await post(port, ask())
            assert status == 200 and headers["x-modelmux-cache"] == "miss"
            status, headers, second = await post(port, ask())
            assert status == 200 and headers["x-modelmux-cache"] == "hit"
            assert second == first and len(fake.raw_bodies) == 1
            assert "x-modelmux-provider" not in headers  # no provider answered
            trace = {"x-request-id": "other", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16
                     + "-01"}
            _, headers, _ = await post(port, ask(user="someone-else"), trace)
            assert headers["x-modelmux-cache"] == "hit"
            _, headers, _ = await post(port, ask(temperature=0.3))
            assert headers["x-modelmux-cache"] == "miss" and len(fake.raw_bodies) == 2
            metrics = app.metrics.render().decode()
            assert 'modelmux_cache_requests_total{result="hit"} 2' in metrics
            assert 'modelmux_cache_requests_total{result="miss"} 2' in metrics
    run(main())


def test_errors_cut_streams_and_filtered_answers_are_not_stored(run) -> None:
    class Filtering(FakeOpenAI):
        filtered = 0

        def answer_to(self, request: Request, kind: str, path_model: str | None) -> Reply:
            if self.filtered:
                self.filtered -= 1
                self.raw_bodies.append(request.body)
                doc = completion_json(self.answer, "gpt-x")
                doc["choices"][0]["finish_reason"] = "content_filter"
                return json_reply(200, doc)
            return super().answer_to(request, kind, path_model)

    async def main() -> None:
        async with Filtering(answer=ANSWER) as fake, gateway(config(fake.origin)) as (_, port):
            fake.faults.append("400")
            status, headers, _ = await post(port, ask())
            assert status == 400 and headers["x-modelmux-cache"] == "miss"
            fake.filtered = 1
            status, _, body = await post(port, ask())
            assert status == 200 and b"content_filter" in body
            status, headers, _ = await post(port, ask())
            assert status == 200 and headers["x-modelmux-cache"] == "miss"
            assert len(fake.raw_bodies) == 3
            fake.faults.append("reset")
            status, headers, body = await post(port, ask(stream=True))
            assert status == 200 and b'"error"' in body and b"[DONE]" not in body
            _, headers, _ = await post(port, ask(stream=True))
            assert headers["x-modelmux-cache"] == "miss"
            _, headers, _ = await post(port, ask(stream=True))
            assert headers["x-modelmux-cache"] == "hit" and len(fake.raw_bodies) == 5
    run(main())


def test_a_stream_hit_replays_the_stream(run) -> None:
    async def main() -> None:
        async with FakeOpenAI(answer=ANSWER) as fake, gateway(config(fake.origin)) as (_, port):
            payload = ask(stream=True, stream_options={"include_usage": True})
            _, headers, first = await post(port, payload)
            _, again, second = await post(port, payload)
            assert (headers["x-modelmux-cache"], again["x-modelmux-cache"]) == ("miss", "hit")
            assert again["content-type"].startswith("text/event-stream")
            assert payloads(second) == payloads(first) and payloads(first)[-1] == b"[DONE]"
            assert json.loads(payloads(second)[-2])["usage"]["completion_tokens"] == 9
            _, headers, _ = await post(port, ask(stream=True))  # no include_usage: another key
            assert headers["x-modelmux-cache"] == "miss" and len(fake.raw_bodies) == 2
    run(main())


def test_rules_decide_what_is_cached(run) -> None:
    rules = [CacheRule(cache_if="deterministic == true"), CacheRule(skip_if="stream == true")]

    async def main() -> None:
        async with FakeOpenAI(answer=ANSWER) as fake, \
                gateway(config(fake.origin, rules=rules)) as (_, port):
            for _ in range(2):
                _, headers, _ = await post(port, ask(temperature=0.8))
                assert headers["x-modelmux-cache"] == "bypass"
                _, headers, _ = await post(port, ask(stream=True, temperature=0))
                assert headers["x-modelmux-cache"] == "bypass"
            _, headers, _ = await post(port, ask(temperature=0))
            assert headers["x-modelmux-cache"] == "miss"
            _, headers, _ = await post(port, ask(seed=5, temperature=1))
            assert headers["x-modelmux-cache"] == "miss"
            _, headers, _ = await post(port, ask(temperature=0))
            assert headers["x-modelmux-cache"] == "hit" and len(fake.raw_bodies) == 6
    run(main())


def test_no_hit_crosses_teams_unless_the_namespace_is_global(run) -> None:
    async def main() -> None:
        for scope, shared in (("team", False), ("key", False), ("global", True)):
            async with FakeOpenAI(answer=ANSWER) as fake, \
                    gateway(config(fake.origin, namespace=scope), TeamFromHeader()) as (_, port):
                _, headers, _ = await post(port, ask(), {"x-test-team": "red"})
                assert headers["x-modelmux-cache"] == "miss"
                _, headers, _ = await post(port, ask(), {"x-test-team": "red"})
                assert headers["x-modelmux-cache"] == "hit"
                _, headers, _ = await post(port, ask(), {"x-test-team": "blue"})
                assert headers["x-modelmux-cache"] == ("hit" if shared else "miss"), scope
                assert len(fake.raw_bodies) == (1 if shared else 2)
    run(main())


class Gated(FakeOpenAI):
    """Holds each request (or, ``first_only``, the first) until ``gate`` is set; counts them."""

    def __init__(self, *, first_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_only = first_only
        self.gate = asyncio.Event()
        self.arrived = 0

    async def handle(self, request: Request) -> Reply:
        self.arrived += 1
        self._notify()
        if not self.first_only or self.arrived == 1:
            await self.gate.wait()
        return await super().handle(request)


def test_concurrent_identical_misses_make_one_upstream_call(run) -> None:
    async def main() -> None:
        count = 6
        async with Gated(answer=ANSWER) as fake, gateway(config(fake.origin)) as (app, port):
            assert app.cache is not None
            for stream in (False, True):
                fake.gate.clear()
                before = len(fake.raw_bodies)
                tasks = [asyncio.ensure_future(post(port, ask(stream=stream)))
                         for _ in range(count)]
                await fake.wait_for(lambda before=before: fake.arrived == 1 + before, DEADLINE)
                async with asyncio.timeout(DEADLINE):
                    while app.cache.waiting < count - 1:  # bounded by the timeout
                        await asyncio.sleep(0.01)
                fake.gate.set()
                answers = await asyncio.gather(*tasks)
                assert len(fake.raw_bodies) == before + 1 and fake.arrived == before + 1
                results = sorted(headers["x-modelmux-cache"] for _, headers, _ in answers)
                assert results == ["hit"] * (count - 1) + ["miss"]
                bodies = {payloads(body)[-2] if stream else body for _, _, body in answers}
                assert len(bodies) == 1
            assert not app.cache.flights and app.cache.waiting == 0
    run(main())


def test_a_follower_stops_waiting_for_a_stuck_leader(run) -> None:
    async def main() -> None:
        async with Gated(answer=ANSWER, first_only=True) as fake, gateway(config(fake.origin)) as (app, port):
            assert app.cache is not None
            app.cache.flight_wait = 0.05
            leader = asyncio.ensure_future(post(port, ask()))
            await fake.wait_for(lambda: fake.arrived == 1, DEADLINE)
            status, headers, _ = await post(port, ask())  # gives up waiting, calls itself
            assert status == 200 and headers["x-modelmux-cache"] == "miss"
            assert fake.arrived == 2
            fake.gate.set()
            status, headers, _ = await leader
            assert status == 200 and headers["x-modelmux-cache"] == "miss"
    run(main())


def test_no_store_no_cache_and_a_shorter_ttl(run) -> None:
    async def main() -> None:
        async with FakeOpenAI(answer=ANSWER) as fake, gateway(config(fake.origin)) as (app, port):
            assert app.cache is not None
            _, headers, _ = await post(port, ask(), {"cache-control": "no-store"})
            assert headers["x-modelmux-cache"] == "bypass"
            _, headers, _ = await post(port, ask())
            assert headers["x-modelmux-cache"] == "miss"  # no-store stored nothing
            _, headers, _ = await post(port, ask(), {"cache-control": "no-cache"})
            assert headers["x-modelmux-cache"] == "miss" and len(fake.raw_bodies) == 3
            _, headers, _ = await post(port, ask())
            assert headers["x-modelmux-cache"] == "hit"
            status, _, body = await post(port, ask(), {"x-modelmux-cache-ttl": "never"})
            assert status == 400 and json.loads(body)["error"]["param"] == "x-modelmux-cache-ttl"
            _, headers, _ = await post(port, ask(n=1), {"x-modelmux-cache-ttl": "0.5"})
            backend: Any = app.cache.backend
            (_, (_, expires, _)), = [item for item in backend._entries.items()
                                     if item[0] != next(iter(backend._entries))]
            assert expires - backend.clock() <= 0.5
    run(main())


def test_a_reload_keeps_the_memory_entries(run) -> None:
    async def main() -> None:
        async with FakeOpenAI(answer=ANSWER) as fake:
            old, new = App(config(fake.origin)), App(config(fake.origin, max_bytes=1 << 20))
            try:
                async with running(old) as (_, port):
                    await post(port, ask())
                assert old.cache is not None and new.cache is not None
                assert new.cache.adopt(old.cache)
                async with running(new) as (_, port):
                    _, headers, _ = await post(port, ask())
                assert headers["x-modelmux-cache"] == "hit"
                assert new.cache.stats()["max_bytes"] == 1 << 20
                assert old.cache.stats()["entries"] == 0  # closing the old App drops nothing
            finally:
                await old.aclose()
                await new.aclose()
    run(main())


def test_the_admin_cache_api(run) -> None:
    async def call(port: int, method: str, key: str = "sesame") -> tuple[int, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"{method} /admin/cache HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                         f"{key}\r\nContent-Length: 0\r\n\r\n".encode())
            status, _, body = await read_response(reader)
            return status, json.loads(body)
        finally:
            writer.close()

    async def main() -> None:
        async with FakeOpenAI(answer=ANSWER) as fake:
            on = msgspec.structs.replace(config(fake.origin), admin=AdminConfig(key="sesame"))
            async with gateway(on) as (_, port):
                await post(port, ask())
                status, stats = await call(port, "GET")
                assert status == 200 and stats["entries"] == 1 and stats["bytes"] > 0
                assert (await call(port, "GET", "wrong"))[0] == 403
                assert await call(port, "DELETE") == (200, {"cleared": 1})
                _, headers, _ = await post(port, ask())
                assert headers["x-modelmux-cache"] == "miss"
            off = msgspec.structs.replace(on, cache=CacheConfig())
            async with gateway(off) as (_, port):
                status, body = await call(port, "DELETE")
                assert status == 404 and body["error"]["code"] == "cache_disabled"
    run(main())


def test_the_messages_door_replays_a_native_claude_stream(run) -> None:
    answer = Answer(text="Native and cached.", tool_calls=(ToolCall("toolu_1", "weather",
                                                                    '{"city": "Oslo"}'),))
    payload = {"model": "claude-x", "max_tokens": 50, "stream": True,
               "messages": [{"role": "user", "content": "Weather?"}]}

    async def call(port: int, stream: bool) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps({**payload, "stream": stream}).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: t\r\ncontent-type: application/"
                         b"json\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
            return await read_response(reader)
        finally:
            writer.close()

    async def main() -> None:
        async with FakeClaude(answer=answer, split=random_pieces(3)) as fake:
            provider = AnthropicConfig(name="claude", models=["claude-x"], api_key="sk-ant-test",
                                       base_url=fake.origin)
            cfg = Config(provider=[provider], cache=CacheConfig(enabled=True))
            async with gateway(cfg) as (_, port):
                replays = {}
                for stream in (True, False):
                    _, first_headers, first = await call(port, stream)
                    _, headers, second = await call(port, stream)
                    assert (first_headers["x-modelmux-cache"], headers["x-modelmux-cache"]) == (
                        "miss", "hit")
                    assert second == first
                    replays[stream] = second
                assert len(fake.bodies) == 2
                events = SSEDecoder().feed(replays[True])
                assert events[-1].event == "message_stop"
                assert any(b'"input_json_delta"' in event.data for event in events)
                message = json.loads(replays[False])
                assert message["stop_reason"] == "tool_use"
    run(main())
