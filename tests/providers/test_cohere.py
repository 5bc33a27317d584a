"""``cohere`` end to end: the official SDK → the gateway → a fake Cohere v2 chat server.

Every byte split, text and parallel tool calls (with the tool plan as content), billed usage,
a tool-result follow-up, the request shape, error statuses, a 429 retried into success, and
mid-stream failures.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import openai
import pytest

from tests.fakes.answers import TEXT, TOOLS, Answer
from tests.fakes.cohere import FakeCohere
from tests.fakes.http import SPLITS, Split, whole
from tests.providers.harness import (
    MESSAGES,
    TOOLS_PARAM,
    Gateway,
    provider_toml,
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

MODEL = "command-r-plus-08-2024"


@contextlib.asynccontextmanager
async def cohere_gateway(*, answer: Answer = TEXT, split: Split = whole,
                         extra: str = "") -> AsyncIterator[tuple[Gateway, FakeCohere]]:
    async with serving(FakeCohere(answer=answer, split=split), lambda fake: provider_toml(
            "co", "cohere", fake.origin, [MODEL], 'api_key = "co-test"', extra)) as served:
        yield served


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("loop", LOOPS)
def test_sdk_sees_the_same_answer_in_every_split(loop: str, split: str) -> None:
    def system_first(fake: FakeCohere) -> None:
        assert fake.bodies[-1]["messages"][0] == {"role": "system", "content": "Be brief."}

    run(loop, every_way(cohere_gateway, MODEL, SPLITS[split], system_first), timeout=60)


def test_request_shape_and_tool_result_follow_up() -> None:
    async def main() -> None:
        async with cohere_gateway(answer=TOOLS) as (gw, fake), gw.client() as client:
            first = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, tools=TOOLS_PARAM, max_tokens=77,
                temperature=0.3, top_p=0.9, stop="END", seed=5,
                tool_choice={"type": "function", "function": {"name": "get_time"}})
            message = first.choices[0].message
            assert message.tool_calls is not None
            follow = [*MESSAGES, message.model_dump(exclude_none=True),
                      *({"role": "tool", "tool_call_id": c.id, "content": f"result {i}"}
                        for i, c in enumerate(message.tool_calls))]
            await client.chat.completions.create(model=MODEL, messages=follow, stream=True)
            assert fake.requests[0].headers["authorization"] == "Bearer co-test"
            body = fake.bodies[0]
            assert {k: body[k] for k in ("model", "max_tokens", "temperature", "p",
                                         "stop_sequences", "seed", "tool_choice")} == {
                "model": MODEL, "max_tokens": 77, "temperature": 0.3, "p": 0.9,
                "stop_sequences": ["END"], "seed": 5, "tool_choice": "REQUIRED"}
            assert [t["function"]["name"] for t in body["tools"]] == ["get_time"]
            second = fake.bodies[1]
            assert second["stream"] is True
            assert second["messages"][2] == {
                "role": "assistant", "tool_plan": TOOLS.text,
                "tool_calls": [{"id": c.id, "type": "function", "function": {
                    "name": c.name, "arguments": c.arguments}} for c in TOOLS.tool_calls]}
            assert second["messages"][3:] == [
                {"role": "tool", "tool_call_id": c.id, "content": f"result {i}"}
                for i, c in enumerate(TOOLS.tool_calls)]

    run("asyncio", main())


ERRORS = [
    ("400", openai.BadRequestError, 400, "invalid_request"),
    ("401", openai.InternalServerError, 502, "upstream_auth_failed"),
    ("429", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("500", openai.InternalServerError, 502, "upstream_server_error"),
]


@pytest.mark.parametrize(("fault", "exc", "status", "code"), ERRORS, ids=[e[0] for e in ERRORS])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_error_statuses(fault: str, exc: type, status: int, code: str, stream: bool) -> None:
    error = run("asyncio", fault_error(cohere_gateway, MODEL, fault, exc, status, code,
                                       stream=stream))
    assert f"fake {fault}" in error.message or fault == "429"


@pytest.mark.parametrize("faults", [["429"], ["500", "429"], ["reset_early"]],
                         ids=["429", "500-429", "reset_early"])
def test_retries_recover_before_the_first_byte(faults: list[str]) -> None:
    run("asyncio", recovers(cohere_gateway, MODEL, faults))


@pytest.mark.parametrize(("fault", "code"), [("error_end", "upstream_generation_error"),
                                             ("no_end", "upstream_stream_truncated"),
                                             ("reset", "upstream_closed")])
def test_mid_stream_failure_reaches_the_sdk_as_an_error(fault: str, code: str) -> None:
    run("asyncio", breaks_mid_stream(cohere_gateway, MODEL, fault, code))


def test_n_above_one_is_refused_naming_the_provider_without_an_upstream_call() -> None:
    run("asyncio", refuses_n(cohere_gateway, MODEL, "'co' (cohere)"))
