"""``Pipeline``: stages run in the one declared order, plugins' faults are contained and named,
and a hook no stage overrides is not run at all."""

from __future__ import annotations

import asyncio
import logging

import msgspec
import pytest

from modelmux.errors import InvalidRequest
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import ORDER, Pipeline, PluginFailed, Stage

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "my card is 4111"}]}'


def context() -> RequestContext:
    from modelmux.schemas.openai_chat import request_decoder

    return RequestContext("openai.chat", request_decoder.decode(BODY), BODY, [], "r1",
                          RequestRecord("r1", "/v1/chat/completions"))


class Note(Stage):
    def __init__(self, kind: str, name: str, seen: list[str]) -> None:
        self.kind, self.name, self.seen = kind, name, seen

    async def on_request(self, ctx: RequestContext) -> None:
        self.seen.append(f"in:{self.name}")

    def on_answer(self, ctx: RequestContext) -> None:
        self.seen.append(f"out:{self.name}")


def test_stages_run_in_the_declared_order_whatever_order_they_are_given() -> None:
    seen: list[str] = []
    stages = [Note("route", "route", seen), Note("middleware", "m1", seen),
              Note("authenticate", "auth", seen), Note("middleware", "m2", seen),
              Note("account", "account", seen)]
    pipeline = Pipeline(stages)
    assert [s.kind for s in pipeline.stages] == sorted((s.kind for s in stages), key=ORDER.index)
    ctx = context()
    asyncio.run(pipeline.before_call(ctx))
    pipeline.after_answer(ctx)
    assert seen == ["in:auth", "in:m1", "in:m2", "in:route", "in:account",
                    "out:account", "out:route", "out:m2", "out:m1", "out:auth"]


def test_an_unknown_kind_or_the_call_kind_is_refused_at_build() -> None:
    for kind in ("call", "after"):
        with pytest.raises(ValueError, match="expected one of"):
            Pipeline([Note(kind, "x", [])])


class Broken(Stage):
    plugin = True
    name = "redact"

    async def on_request(self, ctx: RequestContext) -> None:
        raise KeyError("oops")

    def on_answer(self, ctx: RequestContext) -> None:
        raise RuntimeError("observer broke")


def test_a_plugin_fault_is_a_500_naming_it_and_an_observer_fault_is_only_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    pipeline = Pipeline([Broken()])
    ctx = context()
    with pytest.raises(PluginFailed) as caught:
        asyncio.run(pipeline.before_call(ctx))
    assert caught.value.status == 500 and "'redact' plugin" in caught.value.message
    with caplog.at_level(logging.ERROR, logger="modelmux.pipeline"):
        pipeline.after_answer(ctx)
    assert any("redact" in r.getMessage() for r in caplog.records)


def test_a_plugin_may_answer_the_client_with_its_own_error() -> None:
    class Refuse(Stage):
        plugin, name = True, "guard"

        async def on_request(self, ctx: RequestContext) -> None:
            raise InvalidRequest("no card numbers, please", param="messages")

    with pytest.raises(InvalidRequest, match="no card numbers"):
        asyncio.run(Pipeline([Refuse()]).before_call(context()))


def test_hooks_no_stage_overrides_are_not_run() -> None:
    class RequestOnly(Stage):
        async def on_request(self, ctx: RequestContext) -> None:
            pass

    pipeline = Pipeline([RequestOnly()])
    assert pipeline.observes is False
    assert Pipeline([]).observes is False and Pipeline([Note("middleware", "n", [])]).observes


def test_replacing_the_body_keeps_request_and_body_in_agreement() -> None:
    ctx = context()
    value = ctx.json()
    value["messages"][0]["content"] = "my card is [CARD]"
    ctx.replace_json(value)
    assert ctx.request.messages[0].content == "my card is [CARD]"
    assert msgspec.json.decode(ctx.body)["messages"][0]["content"] == "my card is [CARD]"
    with pytest.raises(msgspec.ValidationError):
        ctx.replace_json({"model": "m", "messages": "not a list"})
    assert ctx.request.messages[0].content == "my card is [CARD]"  # unchanged on failure
