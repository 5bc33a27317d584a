"""One budget of upstream tries per request, shared by provider retries, fallback and hedges,
and one backoff rule through the call stage's one sleep.

Fake OpenAI upstreams on loopback (and a refused port) behind the real in-process gateway; the
official SDKs as clients; upstream hits counted by the fakes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anthropic
import pytest

from tests.fakes.openai import FakeOpenAI
from tests.messages.helpers import client as messages_client
from tests.providers.harness import Gateway, gateway
from tests.routing.scripted import error_of, record_sleeps, served_by
from tests.upstream import refused_port, run


def provider(name: str, origin: str, retries: int) -> str:
    return (f'[[provider]]\nname = "{name}"\ntype = "openai_compatible"\nmodels = ["m"]\n'
            f'base_url = "{origin}/v1"\nmax_retries = {retries}\n')


@asynccontextmanager
async def fleet(origins: list[str | None], retries: int, routing: str = "", **options: Any
                ) -> AsyncIterator[tuple[list[FakeOpenAI | None], Gateway]]:
    """One provider per entry, in plan order: a fake when None, else that origin as is."""
    async with AsyncExitStack() as stack:
        fakes: list[FakeOpenAI | None] = []
        toml = ""
        for i, origin in enumerate(origins):
            fake = None
            if origin is None:
                fake = await stack.enter_async_context(FakeOpenAI(**options))
                origin = fake.origin
            fakes.append(fake)
            toml += provider(f"p{i}", origin, retries)
        gw = await stack.enter_async_context(gateway(toml + routing))
        record_sleeps(gw)
        yield fakes, gw


def hits(fakes: list[FakeOpenAI | None]) -> list[int]:
    return [-1 if fake is None else len(fake.requests) for fake in fakes]


def test_the_budget_caps_retries_and_fallback_together() -> None:
    """Connection refused, then 500s, then 429s: each provider would try 3 times and fallback
    would reach all three (9 tries); the budget of 5 stops after the second 500."""
    async def main() -> None:
        refused = f"http://127.0.0.1:{refused_port()}"
        async with fleet([refused, None, None], 2, "[routing]\nmax_attempts = 5\n") as (fakes, gw):
            assert fakes[1] is not None and fakes[2] is not None
            fakes[1].faults.extend(["500"] * 3)
            fakes[2].faults.extend(["429"] * 3)
            error = await error_of(gw)
            assert hits(fakes) == [-1, 2, 0]
            assert error.status_code == 502  # the last upstream error, in OpenAI's shape
            assert error.body["code"] == "upstream_server_error"  # type: ignore[index]
            assert error.response.headers["x-modelmux-attempts"] == "5"
            assert error.response.headers["x-modelmux-provider"] == "p1"
            fakes[1].faults.clear()  # the server keeps serving: p0 still refuses, p1 answers
            assert await served_by(gw) == ("p1", "4")

    run("asyncio", main())


def test_the_budget_is_spent_on_the_anthropic_door_in_its_shape() -> None:
    async def main() -> None:
        async with fleet([None, None], 2, "[routing]\nmax_attempts = 4\n") as (fakes, gw):
            assert fakes[0] is not None and fakes[1] is not None
            fakes[0].faults.extend(["429"] * 3)
            fakes[1].faults.extend(["500"] * 3)
            async with messages_client(gw) as sdk:
                with pytest.raises(anthropic.APIStatusError) as caught:
                    await sdk.messages.create(model="m", max_tokens=16,
                                              messages=[{"role": "user", "content": "hi"}])
            assert hits(fakes) == [3, 1]
            error = caught.value
            assert error.status_code == 500  # Anthropic's api_error for the upstream's 500
            assert "provider 'p1' failed (upstream HTTP 500)" in error.message
            assert error.body["type"] == "error"  # type: ignore[index]
            assert error.body["error"]["type"] == "api_error"  # type: ignore[index]

    run("asyncio", main())


def test_without_the_key_every_try_of_today_is_made() -> None:
    async def main() -> None:
        async with fleet([None, None], 2) as (fakes, gw):
            for fake in fakes:
                assert fake is not None
                fake.faults.extend(["500"] * 3)
            error = await error_of(gw)
            assert hits(fakes) == [3, 3]
            assert error.response.headers["x-modelmux-attempts"] == "6"

    run("asyncio", main())


def test_a_request_within_the_budget_is_answered() -> None:
    async def main() -> None:
        async with fleet([None, None], 1, "[routing]\nmax_attempts = 3\n") as (fakes, gw):
            assert fakes[0] is not None and fakes[1] is not None
            fakes[0].faults.extend(["503", "503"])
            assert await served_by(gw) == ("p1", "3")
            assert await served_by(gw, stream=True) == ("p0", "1")

    run("asyncio", main())


def test_retries_and_fallback_wait_by_one_rule_through_one_sleep() -> None:
    """A retry of the same deployment waits the upstream's retry-after (within the provider's
    30 s cap); the fallback to another provider waits ``[routing.fallback]``'s constant
    backoff (100 ms × rand() = 1), and both go through the dispatcher's one sleep."""
    async def main() -> None:
        routing = '[routing.fallback]\nbackoff = "constant"\nbase_ms = 100\n'
        async with fleet([None, None], 2, routing, retry_after="3") as (fakes, gw):
            assert fakes[0] is not None
            slept = record_sleeps(gw)
            gw.app.dispatcher.rand = lambda: 1.0
            fakes[0].faults.extend(["429"] * 3)
            assert await served_by(gw) == ("p1", "4")
            assert slept == pytest.approx([3.0, 3.0, 0.1])

    run("asyncio", main())


def test_the_budget_covers_hedges() -> None:
    """With one try allowed, a slow first deployment gets no hedge: the request waits for it."""
    from tests.routing.scripted import HedgeTimer

    async def main() -> None:
        routing = "[routing]\nmax_attempts = 1\n[routing.hedging]\nenabled = true\n"
        async with fleet([None, None], 0, routing) as (fakes, gw):
            timer = HedgeTimer(gw)
            assert await served_by(gw) == ("p0", "1")
            assert timer.delays == [] and hits(fakes) == [1, 0]

    run("asyncio", main())


@pytest.mark.parametrize("value", ["0", "101", '"many"'])
def test_a_budget_out_of_range_is_refused_naming_the_key(value: str) -> None:
    from modelmux.config.schema import decode

    with pytest.raises(ValueError, match=r"routing\.max_attempts"):
        decode(f"[routing]\nmax_attempts = {value}\n")
