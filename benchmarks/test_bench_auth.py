"""pytest-benchmark: the authenticate stage's CPU per request with a cached key, keys off beside
keys on, in one run.

Run: ``python -m pytest benchmarks/test_bench_auth.py``. One round runs the pipeline's
``before_call`` for ``REQUESTS`` chat requests carrying the OpenAI SDK's headers. ``off`` is a
pipeline with no authenticate stage (``[auth] mode = "none"``: the stage is not built);
``key`` authenticates a cached key whose key, user and team each list models (globs), so the
model check walks three lists; ``master`` is the master key (a constant-time compare, no
model check). The coroutine is driven by hand (nothing in these paths suspends), so the
figures are the stage's own work. Divide by ``REQUESTS``; ``key`` − ``off`` is the cost of
authentication.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from modelmux.config.features import AuthConfig
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.authenticate import AuthenticateStage
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline, Stage
from modelmux.schemas.openai_chat import request_decoder
from modelmux.tenancy.authn import Authenticator
from modelmux.tenancy.keys import generate_key
from modelmux.tenancy.records import Key, Team, User
from tests.tenancy.memstore import MemoryStore

pytest.importorskip("pytest_benchmark")

REQUESTS = 1000
BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi."}]}'
SECRET = generate_key()
MASTER = "mm-master-0123456789abcdef0123456789abcdef"


def sdk_headers(token: str) -> list[tuple[bytes, bytes]]:
    """What the openai SDK (Python) sends on a chat request."""
    return [(b"host", b"127.0.0.1:3000"), (b"accept-encoding", b"gzip, deflate"),
            (b"connection", b"keep-alive"), (b"accept", b"application/json"),
            (b"content-type", b"application/json"), (b"user-agent", b"OpenAI/Python 1.99.0"),
            (b"x-stainless-lang", b"python"), (b"x-stainless-package-version", b"1.99.0"),
            (b"x-stainless-os", b"Linux"), (b"x-stainless-arch", b"x64"),
            (b"x-stainless-runtime", b"CPython"), (b"x-stainless-runtime-version", b"3.11.7"),
            (b"authorization", b"Bearer " + token.encode()), (b"x-stainless-async", b"false"),
            (b"x-stainless-retry-count", b"0"), (b"content-length", b"%d" % len(BODY))]


class Noop(Stage):
    """Stands in for the stages that follow (so both pipelines run a loop of hooks)."""

    kind = name = "middleware"

    async def on_request(self, ctx: RequestContext) -> None:
        return None


def pipeline(auth: bool) -> Pipeline:
    stages: list[Stage] = [Noop()]
    if auth:
        store = MemoryStore()
        store.teams["t"] = Team(id="t", name="research", models=("gpt-4o*", "claude-*"))
        store.users["u"] = User(id="u", name="ann", team_id="t", models=("gpt-*",))
        store.keys["k"] = Key(id="k", prefix=SECRET.prefix, hash=SECRET.hash, user_id="u",
                              team_id="t", models=("gpt-4o-mini", "fast"))
        authenticator = Authenticator(AuthConfig(mode="keys", master_key=MASTER), store,
                                      aliases={"fast": "gpt-4o-mini"})
        stages.insert(0, AuthenticateStage(authenticator))
    return Pipeline(stages)


def contexts(token: str) -> list[RequestContext]:
    request = request_decoder.decode(BODY)
    headers = sdk_headers(token)
    out = []
    for n in range(REQUESTS):
        ctx = RequestContext("openai.chat", request, BODY, headers, f"r{n}",
                             RequestRecord(f"r{n}", "/v1/chat/completions"))
        ctx.client = "127.0.0.1:50000"
        out.append(ctx)
    return out


def drive(coro: Coroutine[Any, Any, None]) -> None:
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("a cached authentication suspended")


def runner(auth: bool, token: str) -> Callable[[], None]:
    pipe = pipeline(auth)
    ctxs = contexts(token)
    if auth:  # warm the cache (the first lookup goes to the store, off this measure)
        import asyncio

        asyncio.run(pipe.before_call(contexts(token)[0]))

    def run() -> None:
        before = pipe.before_call
        for ctx in ctxs:
            drive(before(ctx))

    return run


@pytest.mark.parametrize("case", ["off", "key", "master"])
def test_authenticate_cost(benchmark: Any, case: str) -> None:
    token = MASTER if case == "master" else SECRET.secret
    run = runner(case != "off", token)
    benchmark.extra_info["requests"] = REQUESTS
    benchmark(run)
