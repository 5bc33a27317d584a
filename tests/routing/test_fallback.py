"""Fallback across the providers of one model, end to end, and the breakers that skip a provider.

Two fake OpenAI upstreams serve the model ``m`` behind the real in-process gateway (providers
``first`` then ``second``, no retries within a provider); the official ``openai`` SDK is the
client. The router's clock is replaced so breaker cooldowns pass without sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest

from modelmux.config.providers import MockProviderConfig
from modelmux.errors import (
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
)
from modelmux.providers.mock import MockProvider
from modelmux.routing.breaker import BreakerState
from modelmux.routing.models import ModelIndex
from modelmux.routing.router import (
    Attempt,
    Estimate,
    Router,
    is_failover_error,
    retry_after_of,
)
from modelmux.upstream.errors import UpstreamClosed, UpstreamConnectError, UpstreamTimeout
from tests.fakes.answers import TEXT
from tests.fakes.openai import FakeOpenAI
from tests.providers.harness import Gateway, gateway
from tests.routing.scripted import Clock, ask, provider_toml
from tests.upstream import refused_port, run, until


@asynccontextmanager
async def two(first_origin: str | None = None) -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI,
                                                                     Gateway, Clock]]:
    """``first`` (a fake, or ``first_origin`` when given) and ``second``, both serving ``m``."""
    async with FakeOpenAI() as first, FakeOpenAI() as second:
        toml = provider_toml("first", first_origin or first.origin) + provider_toml("second", second.origin)
        async with gateway(toml) as gw:
            clock = Clock()
            gw.app.router.clock = clock
            yield first, second, gw, clock


def served_by(headers: dict[str, str]) -> tuple[str, str]:
    return headers["x-modelmux-provider"], headers["x-modelmux-attempts"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", ["500", "503", "429"])
def test_failure_before_the_first_byte_falls_back(fault: str, stream: bool) -> None:
    async def main() -> None:
        async with two() as (first, second, gw, _):
            first.faults.append(fault)
            text, headers = await ask(gw, stream)
            assert text == TEXT.text
            assert served_by(headers) == ("second", "2")
            assert (len(first.requests), len(second.requests)) == (1, 1)
            assert second.requests[0].json()["model"] == "m"

    run("asyncio", main())


def test_reset_before_the_first_chunk_falls_back() -> None:
    async def main() -> None:
        async with two() as (first, _second, gw, _):
            first.faults.append("reset_early")
            text, headers = await ask(gw, stream=True)
            assert text == TEXT.text
            assert served_by(headers) == ("second", "2")

    run("asyncio", main())


@pytest.mark.parametrize("stream", [False, True])
def test_connection_refused_falls_back(stream: bool) -> None:
    async def main() -> None:
        async with two(f"http://127.0.0.1:{refused_port()}") as (first, _second, gw, _):
            text, headers = await ask(gw, stream)
            assert text == TEXT.text
            assert served_by(headers) == ("second", "2")
            assert not first.requests

    run("asyncio", main())


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("fault", "error"), [("400", openai.BadRequestError),
                                              ("404", openai.NotFoundError)])
def test_client_errors_are_not_retried_elsewhere(fault: str, error: type[openai.APIStatusError],
                                                 stream: bool) -> None:
    async def main() -> None:
        async with two() as (first, second, gw, _):
            first.faults.append(fault)
            with pytest.raises(error) as caught:
                await ask(gw, stream)
            assert served_by(dict(caught.value.response.headers)) == ("first", "1")
            assert (len(first.requests), len(second.requests)) == (1, 0)
            assert gw.app.router.breaker("first/m").state(0.0) is BreakerState.CLOSED

    run("asyncio", main())


@pytest.mark.parametrize("stream", [False, True])
def test_every_provider_failing_gives_the_last_error(stream: bool) -> None:
    async def main() -> None:
        async with two() as (first, second, gw, _):
            first.faults.append("500")
            second.faults.append("503")
            with pytest.raises(openai.InternalServerError) as caught:
                await ask(gw, stream)
            assert caught.value.status_code == 502
            assert served_by(dict(caught.value.response.headers)) == ("second", "2")

    run("asyncio", main())


@pytest.mark.parametrize("stream", [False, True])
def test_open_breaker_skips_the_provider_until_its_cooldown(stream: bool) -> None:
    async def main() -> None:
        async with two() as (first, _second, gw, clock):
            breaker = gw.app.router.breaker("first/m")
            failures = breaker.policy.consecutive_failures
            first.faults.extend(["500"] * failures)
            for _ in range(failures):
                text, headers = await ask(gw, stream)
                assert (text, served_by(headers)) == (TEXT.text, ("second", "2"))
            assert breaker.state(clock.now) is BreakerState.OPEN
            text, headers = await ask(gw, stream)  # first is skipped: one attempt, at second
            assert (text, served_by(headers)) == (TEXT.text, ("second", "1"))
            assert len(first.requests) == failures
            clock.now += breaker.policy.cooldown  # half-open: one probe goes to first, and wins
            text, headers = await ask(gw, stream)
            assert (text, served_by(headers)) == (TEXT.text, ("first", "1"))
            await until(lambda: breaker.state(clock.now) is BreakerState.CLOSED)  # at its end
            assert gw.app.router.breaker("second/m").state(clock.now) is BreakerState.CLOSED

    run("asyncio", main())


def test_retry_after_opens_the_circuit_for_that_long() -> None:
    async def main() -> None:
        async with FakeOpenAI(retry_after="60") as first, FakeOpenAI() as second:
            toml = provider_toml("first", first.origin) + provider_toml("second", second.origin)
            async with gateway(toml) as gw:
                clock = Clock()
                gw.app.router.clock = clock
                first.faults.append("429")
                assert served_by((await ask(gw, False))[1]) == ("second", "2")
                assert served_by((await ask(gw, False))[1]) == ("second", "1")
                clock.now += 60
                assert served_by((await ask(gw, False))[1]) == ("first", "1")

    run("asyncio", main())


def test_all_circuits_open_still_tries_the_firstprovider_toml() -> None:
    async def main() -> None:
        async with two() as (first, second, gw, clock):
            for name in ("first", "second"):
                gw.app.router.breaker(f"{name}/m").on_failure(clock.now, retry_after=60.0)
            text, headers = await ask(gw, False)
            assert (text, served_by(headers)) == (TEXT.text, ("first", "1"))
            assert (len(first.requests), len(second.requests)) == (1, 0)

    run("asyncio", main())


# The pure parts: candidates and the router's bookkeeping.

def _mock(name: str, models: list[str]) -> MockProvider:
    return MockProvider(MockProviderConfig(name=name, models=models))


def test_candidates_lists_every_provider_of_a_model_in_config_order() -> None:
    a, b, c = _mock("a", ["m", "x"]), _mock("b", ["y"]), _mock("c", ["m"])
    index = ModelIndex([a, b, c], [("pub", "m", True), ("*", "y", False)])
    assert index.candidates("m") == [(a, "m"), (c, "m")]
    assert index.candidates("PUB") == [(a, "m"), (c, "m")]
    assert index.candidates("c/m") == [(c, "m")]
    assert index.candidates("unknown") == [(b, "y")]
    for name in ("m", "PUB", "c/m", "x", "unknown"):
        assert index.candidates(name)[0] == index.resolve(name)
    with pytest.raises(ModelNotFound):
        ModelIndex([a]).candidates("nope")


def test_router_admits_by_breaker_and_reports_outcomes() -> None:
    clock = Clock()
    a, b = _mock("a", ["m"]), _mock("b", ["m"])
    index = ModelIndex([a, b])
    router = Router(clock=clock)
    group = index.group("m")
    spec_a, spec_b = group.deployments
    assert router.plan(index, group, {}, Estimate()) == [spec_a, spec_b]
    router.state(spec_a).breaker.on_failure(clock.now, retry_after=5.0)
    assert router.plan(index, group, {}, Estimate()) == [spec_b, spec_a]  # open ones go last
    assert router.admit(spec_a, 1) is None
    attempt = router.admit(spec_b, 1)
    assert isinstance(attempt, Attempt) and attempt.guarded
    assert router.state(spec_b).in_flight == 1
    router.failed(attempt, InvalidRequest("bad"))  # a client error: no verdict, slot freed
    assert router.breaker("b/m").state(clock.now) is BreakerState.CLOSED
    assert router.state(spec_b).in_flight == 0
    clock.now += 5.0
    probe = router.admit(spec_a, 1)
    assert isinstance(probe, Attempt)
    assert router.admit(spec_a, 1) is None  # one probe at a time
    clock.now += 0.25
    router.succeeded(probe)
    router.finish(probe, 10)
    router.finish(probe, 10)  # idempotent
    assert router.breaker("a/m").state(clock.now) is BreakerState.CLOSED
    snap = router.snapshot()["a/m"]
    assert snap["in_flight"] == 0 and snap["ewma_ttft_ms"] == 250.0
    assert snap["breaker"]["state"] == "closed"  # type: ignore[index]


def test_failover_errors() -> None:
    assert is_failover_error(UpstreamError("x", code="upstream_server_error"))
    assert is_failover_error(RateLimited("x"))
    assert is_failover_error(ServiceUnavailable("x", code="overloaded"))
    assert is_failover_error(UpstreamClosed("x"))
    assert is_failover_error(UpstreamConnectError("x"))
    assert is_failover_error(UpstreamTimeout("x", phase="first_byte"))
    for error in (InvalidRequest("x"), ModelNotFound("x"), PayloadTooLarge("x"),
                  UpstreamAuthFailed("x"), UpstreamError("x", code="upstream_unexpected_status")):
        assert not is_failover_error(error)
    limited: Any = RateLimited("x", headers=[(b"retry-after", b"7")])
    assert retry_after_of(limited) == 7.0
    assert retry_after_of(RateLimited("x")) is None
