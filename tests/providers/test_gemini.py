"""``gemini`` end to end: the official SDK → the gateway → a fake AI Studio server.

Every byte split, text and parallel tool calls, usage, a tool-result follow-up, the request
shape, error statuses, a 429 retried into success, and mid-stream failures.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.fakes.answers import TEXT, TOOLS, Answer
from tests.fakes.gemini import FakeGemini
from tests.fakes.http import SPLITS, Split, whole
from tests.providers.harness import (
    MESSAGES,
    TOOLS_PARAM,
    Gateway,
    Seen,
    collect,
    expected,
    from_completion,
    gateway,
    same,
)
from tests.upstream import LOOPS, run

_ID = re.compile(r"call_[A-Za-z0-9_-]+_\d")


@contextlib.asynccontextmanager
async def gemini_gateway(*, answer: Answer = TEXT, split: Split = whole,
                         extra: str = "") -> AsyncIterator[tuple[Gateway, FakeGemini]]:
    async with FakeGemini(answer=answer, split=split) as fake:
        toml = (f'[[provider]]\nname = "gem"\ntype = "gemini"\nmodels = ["gemini-2.0-flash"]\n'
                f'api_key = "AIza-test"\nbase_url = "{fake.origin}"\n{extra}\n')
        async with gateway(toml) as gw:
            yield gw, fake


def _ids_checked(seen: Seen, answer: Answer) -> Seen:
    """Gemini sends no call ids: the gateway's are well-formed and distinct; then compare the
    rest (arguments as JSON, since Gemini re-serialises them)."""
    ids = [call["id"] for call in seen.tool_calls.values()]
    assert all(_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids), ids
    for index, call in seen.tool_calls.items():
        call["id"] = answer.tool_calls[index].id
        call["arguments"] = json.loads(call["arguments"])
    return seen


def _want(answer: Answer, *, usage: bool = True) -> Seen:
    want = expected(answer, "gemini-2.0-flash", usage=usage)
    for call in want.tool_calls.values():
        call["arguments"] = json.loads(call["arguments"])
    return want


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("loop", LOOPS)
def test_sdk_sees_the_same_answer_in_every_split(loop: str, split: str) -> None:
    async def main() -> None:
        for answer in (TEXT, TOOLS):
            async with gemini_gateway(answer=answer, split=SPLITS[split]) as (gw, fake):
                async with gw.client() as client:
                    done = await client.chat.completions.create(
                        model="gemini-2.0-flash", messages=MESSAGES, tools=TOOLS_PARAM)
                    same(_ids_checked(from_completion(done), answer), _want(answer))
                    stream = await client.chat.completions.create(
                        model="gemini-2.0-flash", messages=MESSAGES, tools=TOOLS_PARAM,
                        stream=True, stream_options={"include_usage": True})
                    same(_ids_checked(await collect(stream), answer), _want(answer))
                    plain = await client.chat.completions.create(
                        model="gemini-2.0-flash", messages=MESSAGES, stream=True)
                    same(_ids_checked(await collect(plain), answer), _want(answer, usage=False))
                assert fake.bodies[-1]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}

    run(loop, main(), timeout=60)


def test_request_shape_and_tool_result_follow_up() -> None:
    async def main() -> None:
        async with gemini_gateway(answer=TOOLS) as (gw, fake), gw.client() as client:
            first = await client.chat.completions.create(
                model="gemini-2.0-flash", messages=MESSAGES, max_tokens=77, temperature=0.3,
                top_p=0.9, stop=["END"], tool_choice="required",
                tools=[{"type": "function", "function": {
                    "name": "get_weather", "parameters": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object", "additionalProperties": False,
                        "properties": {"city": {"type": ["string", "null"]},
                                       "unit": {"const": "C"}},
                        "required": ["city"]}}}])
            calls = first.choices[0].message.tool_calls
            assert calls is not None and first.choices[0].finish_reason == "tool_calls"
            follow = [*MESSAGES, first.choices[0].message.model_dump(exclude_none=True),
                      *({"role": "tool", "tool_call_id": c.id,
                         "content": '{"ok": true}' if i == 0 else "sunny"}
                        for i, c in enumerate(calls))]
            await client.chat.completions.create(model="gemini-2.0-flash", messages=follow)
            assert fake.models == ["gemini-2.0-flash"] * 2
            assert fake.requests[0].headers["x-goog-api-key"] == "AIza-test"
            body = fake.bodies[0]
            assert body["generationConfig"] == {"maxOutputTokens": 77, "temperature": 0.3,
                                                "topP": 0.9, "stopSequences": ["END"]}
            assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
            assert body["tools"] == [{"functionDeclarations": [{"name": "get_weather",
                "parameters": {"type": "object", "required": ["city"], "properties": {
                    "city": {"type": "string", "nullable": True}, "unit": {"enum": ["C"]}}}}]}]
            contents = fake.bodies[1]["contents"]
            assert [c["role"] for c in contents] == ["user", "model", "user"]
            assert contents[1]["parts"] == [
                {"text": TOOLS.text},
                {"functionCall": {"name": "get_weather", "args": json.loads(
                    TOOLS.tool_calls[0].arguments)}},
                {"functionCall": {"name": "get_time", "args": json.loads(
                    TOOLS.tool_calls[1].arguments)}}]
            assert contents[2]["parts"] == [
                {"functionResponse": {"name": "get_weather", "response": {"ok": True}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "sunny"}}}]

    run("asyncio", main())


ERRORS = [
    ("400", openai.BadRequestError, 400, "invalid_request"),
    ("403", openai.InternalServerError, 502, "upstream_auth_failed"),
    ("429", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("500", openai.InternalServerError, 502, "upstream_server_error"),
]


@pytest.mark.parametrize(("fault", "exc", "status", "code"), ERRORS, ids=[e[0] for e in ERRORS])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_error_statuses(fault: str, exc: type, status: int, code: str, stream: bool) -> None:
    async def main() -> None:
        async with gemini_gateway(extra="max_retries = 0") as (gw, fake), gw.client() as client:
            fake.faults.append(fault)
            with pytest.raises(exc) as caught:
                answer: Any = await client.chat.completions.create(
                    model="gemini-2.0-flash", messages=MESSAGES, stream=stream)
                if stream:
                    await collect(answer)
            assert caught.value.status_code == status
            assert caught.value.code == code  # type: ignore[attr-defined]
            assert len(fake.requests) == 1

    run("asyncio", main())


@pytest.mark.parametrize("faults", [["429"], ["503", "error_first"], ["reset_early"]],
                         ids=["429", "503-error_first", "reset_early"])
def test_retries_recover_before_the_first_byte(faults: list[str]) -> None:
    async def main() -> None:
        async with gemini_gateway(answer=TOOLS) as (gw, fake), gw.client() as client:
            fake.faults.extend(faults)
            stream = await client.chat.completions.create(model="gemini-2.0-flash",
                                                          messages=MESSAGES, stream=True)
            same(_ids_checked(await collect(stream), TOOLS), _want(TOOLS, usage=False))
            assert len(fake.requests) == len(faults) + 1

    run("asyncio", main())


@pytest.mark.parametrize("fault", ["error_event", "no_finish", "reset"])
def test_mid_stream_failure_reaches_the_sdk_as_an_error(fault: str) -> None:
    async def main() -> None:
        async with gemini_gateway() as (gw, fake), gw.client() as client:
            fake.faults.append(fault)
            stream = await client.chat.completions.create(model="gemini-2.0-flash",
                                                          messages=MESSAGES, stream=True)
            with pytest.raises(openai.APIError) as caught:
                await collect(stream)
            want = {"error_event": "service_unavailable", "no_finish": "upstream_stream_truncated",
                    "reset": "upstream_closed"}[fault]
            assert caught.value.code == want  # type: ignore[attr-defined]
            assert len(fake.requests) == 1

    run("asyncio", main())


def test_n_above_one_is_refused_naming_the_provider_without_an_upstream_call() -> None:
    async def main() -> None:
        async with gemini_gateway() as (gw, fake), gw.client() as client:
            for stream in (False, True):
                with pytest.raises(openai.BadRequestError) as caught:
                    await client.chat.completions.create(model="gemini-2.0-flash",
                                                         messages=MESSAGES, n=2, stream=stream)
                assert caught.value.param == "n"  # type: ignore[attr-defined]
                assert "provider 'gem' (gemini)" in caught.value.message
            assert fake.requests == []

    run("asyncio", main())
