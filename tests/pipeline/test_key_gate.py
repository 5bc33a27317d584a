"""``KeyGate`` (authentication and admission as one stage) and ``Pipeline``'s ``enter``: a
cached key is let in, limited and refused without the stage's coroutine, with the same
answers as the two stages apart; everything else takes the full ``on_request``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelmux.config.features import AuthConfig
from modelmux.errors import AuthenticationFailed, PermissionDenied, RateLimited
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.admit import request_tokens
from modelmux.pipeline.authenticate import KeyGate
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline, Stage
from modelmux.providers.base import CallStats
from modelmux.routing.memory import MemoryLimits
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.store import Lease
from modelmux.schemas.openai_chat import request_decoder
from modelmux.tenancy.authn import Authenticator
from modelmux.tenancy.keys import generate_key, hash_key
from modelmux.tenancy.records import Key, Team
from tests.pipeline.test_admit import Clock
from tests.tenancy.memstore import MemoryStore

pytestmark = pytest.mark.usefixtures("gate_twin")

SECRET = generate_key().secret


class Seen(Stage):
    """A stage after the gate (as the route stage is), noting each request and answer."""

    kind = name = "route"

    def __init__(self) -> None:
        self.requests = self.answers = 0

    async def on_request(self, ctx: RequestContext) -> None:
        self.requests += 1

    def on_answer(self, ctx: RequestContext) -> None:
        self.answers += 1


class CountingGate(KeyGate):
    """Counts the requests that took the full ``on_request``."""

    slow = 0

    async def on_request(self, ctx: RequestContext) -> None:
        self.slow += 1
        await super().on_request(ctx)


def gate(limits: Any = None, **key: Any) -> tuple[CountingGate, MemoryStore]:
    store = MemoryStore()
    store.teams["t"] = Team(id="t", name="t", models=("gpt-*",))
    store.keys["k"] = Key(id="k", prefix=SECRET[:12], hash=hash_key(SECRET), team_id="t", **key)
    auth = Authenticator(AuthConfig(mode="keys", master_key="m"), store)
    return CountingGate(auth, limits or MemoryLimits(clock=Clock())), store


def context(model: str = "gpt-4o", token: str = SECRET) -> RequestContext:
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}]}' % model.encode()
    ctx = RequestContext("openai.chat", request_decoder.decode(body), body,
                         [(b"authorization", b"Bearer " + token.encode())], "r1",
                         RequestRecord("r1", "/v1/chat/completions"), "127.0.0.1:4000")
    return ctx


def run(pipeline: Pipeline, ctx: RequestContext) -> RequestContext:
    async def go() -> None:
        await pipeline.before_call(ctx)
    asyncio.run(go())
    ctx.status = 200
    pipeline.after_answer(ctx)
    return ctx


def test_a_cached_limited_key_is_let_in_without_the_stages_coroutine() -> None:
    g, store = gate(rpm=2)
    after = Seen()
    pipeline = Pipeline([after, g])
    first = run(pipeline, context())  # not cached yet: the full check
    assert g.slow == 1 and store.lookups == 1
    second = run(pipeline, context())
    assert g.slow == 1 and after.requests == after.answers == 2  # entered; the rest still ran
    assert second.identity is first.identity and second.record.key == SECRET[:12]
    assert dict(first.response_headers)[b"x-ratelimit-remaining-requests"] == b"1"
    assert dict(second.response_headers)[b"x-ratelimit-remaining-requests"] == b"0"
    third = context()
    with pytest.raises(RateLimited) as caught:
        run(pipeline, third)
    assert caught.value.code == "rate_limit_exceeded" and g.slow == 1
    assert caught.value.headers == [(b"retry-after", b"30")]
    assert dict(third.response_headers)[b"x-ratelimit-limit-requests"] == b"2"
    assert after.requests == 2  # refused before the later stages


def test_anything_the_cache_cannot_answer_takes_the_full_check() -> None:
    g, _ = gate()
    pipeline = Pipeline([g, Seen()])
    run(pipeline, context())
    run(pipeline, context())
    assert g.slow == 1
    with pytest.raises(PermissionDenied):  # the team lists gpt-* only
        run(pipeline, context("claude-3"))
    with pytest.raises(AuthenticationFailed):
        run(pipeline, context(token="sk-mm-not-a-key"))
    assert g.slow == 3


def test_the_grant_is_settled_with_the_real_usage() -> None:
    limits = MemoryLimits(clock=Clock())
    g, _ = gate(limits, tpm=1000)
    pipeline = Pipeline([g])
    for n in range(2):  # the second is entered
        ctx = context()
        asyncio.run(pipeline.before_call(ctx))  # type: ignore[arg-type]
        held = 1000 - 15 * n - request_tokens(ctx)  # the estimate, while the request runs
        assert dict(ctx.response_headers)[b"x-ratelimit-remaining-tokens"] == b"%d" % held
        ctx.record.stats = CallStats()
        ctx.record.stats.tokens = (10, 5)
        pipeline.after_answer(ctx)
    assert g.slow == 1
    spec = next(iter(g._specs.values()))[1]
    assert limits.available(spec)[1] == 1000 - 15 - 15


class IoLimits(MemoryLimits):
    """An in-process store that the stage must treat as one doing I/O (as Redis)."""

    acquired = 0

    async def acquire(self, spec: DeploymentSpec, tokens: float) -> Lease | float:
        self.acquired += 1
        return self.try_acquire(spec, tokens)


def test_a_store_doing_io_is_awaited_in_on_request() -> None:
    limits = IoLimits()
    g, _ = gate(limits, rpm=5)
    g.hold(None)  # what the gate holds for a store other than the in-process one
    pipeline = Pipeline([g, Seen()])
    for _ in range(3):
        run(pipeline, context())
    assert g.slow == 3 and limits.acquired == 3


class Sync(Stage):
    kind = name = "authenticate"

    def __init__(self, done: bool, seen: list[str], plugin: bool = False) -> None:
        self.done, self.seen, self.plugin = done, seen, plugin

    def enter(self, ctx: RequestContext) -> bool:
        self.seen.append("enter")
        return self.done

    async def on_request(self, ctx: RequestContext) -> None:
        self.seen.append("on_request")


@pytest.mark.parametrize(("done", "plugin", "expected"), [
    (True, False, ["enter"]), (False, False, ["enter", "on_request"]),
    (True, True, ["on_request"])])
def test_pipeline_uses_the_first_stages_enter(done: bool, plugin: bool,
                                              expected: list[str]) -> None:
    seen: list[str] = []
    after = Seen()
    for rest in ([], [after], [after, Seen()]):
        seen.clear()
        asyncio.run(Pipeline([Sync(done, seen, plugin), *rest]).before_call(context()))
        assert seen == expected
    assert after.requests == 2
