"""``gemini`` end to end: the official SDK → the gateway → a fake AI Studio server.

Every byte split, text and parallel tool calls, usage, a tool-result follow-up, the request
shape, error statuses, a 429 retried into success, and mid-stream failures.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import openai
import pytest

from tests.fakes.answers import TEXT, TOOLS, Answer
from tests.fakes.gemini import FakeGemini
from tests.fakes.http import SPLITS, Split, whole
from tests.providers.harness import (
    MESSAGES,
    Gateway,
    provider_toml,
    same_minting_ids,
    serving,
)
from tests.providers.scenarios import (
    breaks_mid_stream,
    every_way,
    fault_error,
    recovers,
    refuses_n,
)
from tests.upstream import LOOPS, run

MODEL = "gemini-2.0-flash"


@contextlib.asynccontextmanager
async def gemini_gateway(*, answer: Answer = TEXT, split: Split = whole,
                         extra: str = "") -> AsyncIterator[tuple[Gateway, FakeGemini]]:
    async with serving(FakeGemini(answer=answer, split=split), lambda fake: provider_toml(
            "gem", "gemini", fake.origin, [MODEL], 'api_key = "AIza-test"', extra)) as served:
        yield served


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("loop", LOOPS)
def test_sdk_sees_the_same_answer_in_every_split(loop: str, split: str) -> None:
    def system_apart(fake: FakeGemini) -> None:
        assert fake.bodies[-1]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}

    run(loop, every_way(gemini_gateway, MODEL, SPLITS[split], system_apart,
                        check=same_minting_ids), timeout=60)


def test_request_shape_and_tool_result_follow_up() -> None:
    async def main() -> None:
        async with gemini_gateway(answer=TOOLS) as (gw, fake), gw.client() as client:
            first = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, max_tokens=77, temperature=0.3,
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
            await client.chat.completions.create(model=MODEL, messages=follow)
            assert fake.models == [MODEL] * 2
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
    run("asyncio", fault_error(gemini_gateway, MODEL, fault, exc, status, code, stream=stream))


@pytest.mark.parametrize("faults", [["429"], ["503", "error_first"], ["reset_early"]],
                         ids=["429", "503-error_first", "reset_early"])
def test_retries_recover_before_the_first_byte(faults: list[str]) -> None:
    run("asyncio", recovers(gemini_gateway, MODEL, faults, same_minting_ids))


@pytest.mark.parametrize(("fault", "code"), [("error_event", "service_unavailable"),
                                             ("no_finish", "upstream_stream_truncated"),
                                             ("reset", "upstream_closed")])
def test_mid_stream_failure_reaches_the_sdk_as_an_error(fault: str, code: str) -> None:
    run("asyncio", breaks_mid_stream(gemini_gateway, MODEL, fault, code))


def test_n_above_one_is_refused_naming_the_provider_without_an_upstream_call() -> None:
    run("asyncio", refuses_n(gemini_gateway, MODEL, "'gem' (gemini)"))
