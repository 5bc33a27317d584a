"""The authenticate stage: sets ``ctx.identity``, refuses a model outside the caller's lists
(403 ``model_not_allowed``), and runs before every other stage."""

from __future__ import annotations

import asyncio

import pytest

from modelmux.config.features import AuthConfig
from modelmux.errors import AuthenticationFailed, PermissionDenied
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.authenticate import AuthenticateStage
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline, Stage
from modelmux.schemas.openai_chat import request_decoder
from modelmux.tenancy.authn import Authenticator
from modelmux.tenancy.keys import generate_key, hash_key
from modelmux.tenancy.records import Key, Team
from tests.tenancy.memstore import MemoryStore

SECRET = generate_key().secret


def context(model: str, token: str | None) -> RequestContext:
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}]}' % model.encode()
    headers = [(b"authorization", b"Bearer " + token.encode())] if token else []
    ctx = RequestContext("openai.chat", request_decoder.decode(body), body, headers, "r1",
                         RequestRecord("r1", "/v1/chat/completions"))
    ctx.client = "127.0.0.1:4000"
    return ctx


def stage() -> AuthenticateStage:
    store = MemoryStore()
    store.teams["t"] = Team(id="t", name="t", models=("gpt-*", "fast"))
    store.keys["k"] = Key(id="k", prefix=SECRET[:12], hash=hash_key(SECRET),
                          team_id="t", models=("gpt-4o", "fast"))
    auth = Authenticator(AuthConfig(mode="keys", master_key="m"), store,
                         aliases={"fast": "gpt-4o-mini"})
    return AuthenticateStage(auth)


def test_sets_identity_and_lets_an_allowed_model_through() -> None:
    ctx = context("gpt-4o", SECRET)
    asyncio.run(stage().on_request(ctx))
    assert ctx.identity is not None and ctx.identity.key is not None
    assert ctx.identity.team is not None and ctx.identity.team.id == "t"


def test_alias_listed_by_name_passes() -> None:
    ctx = context("fast", SECRET)
    asyncio.run(stage().on_request(ctx))
    assert ctx.identity is not None


@pytest.mark.parametrize("model", ["claude-3", "gpt-4o-mini"])  # outside the key / the key's list
def test_model_outside_a_list_is_403_each_time(model: str) -> None:
    one = stage()

    async def twice() -> None:
        for _ in range(2):  # the second answer comes from the cached entry's decision
            with pytest.raises(PermissionDenied) as caught:
                await one.on_request(context(model, SECRET))
            assert caught.value.status == 403 and caught.value.code == "model_not_allowed"
            assert caught.value.param == "model"
        await one.on_request(context("gpt-4o", SECRET))

    asyncio.run(twice())


def test_master_key_may_use_any_model() -> None:
    ctx = context("claude-3", "m")
    asyncio.run(stage().on_request(ctx))
    assert ctx.identity is not None and ctx.identity.role == "admin"


def test_no_key_is_401_before_any_later_stage_runs() -> None:
    seen: list[str] = []

    class Later(Stage):
        kind = name = "middleware"

        async def on_request(self, ctx: RequestContext) -> None:
            seen.append("middleware")

    pipeline = Pipeline([Later(), stage()])
    with pytest.raises(AuthenticationFailed):
        asyncio.run(pipeline.before_call(context("gpt-4o", None)))
    assert seen == []
