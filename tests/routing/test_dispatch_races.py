"""The dispatcher's hedge race under cancellation, driven directly with scripted providers.

``Scripted`` is a provider whose stream either answers at once or stalls until cancelled,
then spends as long as the test says cleaning up: the window in which a client may leave.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from modelmux.pipeline.call import Dispatcher, Failed
from modelmux.config.routing import FallbackConfig, HedgingConfig, RoutingConfig
from modelmux.errors import ServiceUnavailable
from modelmux.observability.gateway import GatewayMetrics
from modelmux.providers.base import CallStats, Provider
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.router import Router
from tests.upstream import run


class Scripted(Provider):
    """``stall``: no first byte until cancelled, then wait for ``release`` before giving up;
    ``fail``: a 503 at once."""

    def __init__(self, name: str, *, stall: bool, fail: bool = False) -> None:
        super().__init__(name, ["m"])
        self.stall, self.fail = stall, fail
        self.calls = 0
        self.cleaning = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = 0

    async def complete(self, call: Any) -> bytes:
        raise NotImplementedError

    async def stream(self, call: Any) -> AsyncGenerator[bytes, None]:  # type: ignore[override]
        self.calls += 1
        try:
            if self.fail:
                raise ServiceUnavailable("overloaded")
            if self.stall:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    self.cleaning.set()
                    await self.release.wait()  # a slow upstream clean-up
                    raise
            yield b"first"
            yield b"second"
        finally:
            self.closed += 1


class Call:
    def __init__(self) -> None:
        self.stats = CallStats()


def hedged(delay_ms: int = 1, **fallback: Any) -> RoutingConfig:
    return RoutingConfig(hedging=HedgingConfig(enabled=True, delay_ms=delay_ms),
                         fallback=FallbackConfig(**fallback))


def test_a_client_leaving_during_loser_clean_up_frees_the_winner() -> None:
    async def main() -> None:
        slow, fast = Scripted("slow", stall=True), Scripted("fast", stall=False)
        plan = [DeploymentSpec(slow, "m", max_concurrent=1),
                DeploymentSpec(fast, "m", max_concurrent=1)]
        router = Router()
        dispatcher = Dispatcher(router, hedged(), GatewayMetrics("t"))
        serving = asyncio.ensure_future(
            dispatcher.serve(plan, 1, lambda spec: Call(), streamed=True))  # type: ignore[arg-type,return-value]
        await asyncio.wait_for(slow.cleaning.wait(), 5)  # the fast one won; the loser cleans up
        serving.cancel()  # the client leaves now
        await asyncio.sleep(0)
        slow.release.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(serving, 5)
        assert [router.live[s.id].in_flight for s in plan] == [0, 0]
        assert (slow.closed, fast.closed) == (1, 1)  # the winner's stream was closed too
        for spec in plan:  # both slots are free again
            lease = await router.limits.acquire(spec, 1)
            assert not isinstance(lease, float)

    run("asyncio", main())


@pytest.mark.parametrize("fallback", [{"enabled": False}, {"max_retries": 0}])
def test_hedging_works_with_fallback_off_or_no_retries(fallback: dict[str, Any]) -> None:
    async def main() -> None:
        slow, fast = Scripted("slow", stall=True), Scripted("fast", stall=False)
        slow.release.set()
        plan = [DeploymentSpec(slow, "m"), DeploymentSpec(fast, "m")]
        router = Router()
        dispatcher = Dispatcher(router, hedged(**fallback), GatewayMetrics("t"))
        served = await asyncio.wait_for(
            dispatcher.serve(plan, 1, lambda spec: Call(), streamed=True), 5)  # type: ignore[arg-type,return-value]
        assert served.provider is fast and served.first == b"first"
        assert served.chunks is not None
        await served.chunks.aclose()
        dispatcher.finish(served)
        assert [router.live[s.id].in_flight for s in plan] == [0, 0]

    run("asyncio", main())


def test_hedging_with_fallback_off_still_never_retries_after_a_failure() -> None:
    async def main() -> None:
        broken, spare = Scripted("broken", stall=False, fail=True), Scripted("spare", stall=False)
        plan = [DeploymentSpec(broken, "m"), DeploymentSpec(spare, "m")]
        dispatcher = Dispatcher(Router(), hedged(5000, enabled=False), GatewayMetrics("t"))
        with pytest.raises(Failed) as failed:
            await asyncio.wait_for(
                dispatcher.serve(plan, 1, lambda spec: Call(), streamed=True), 5)  # type: ignore[arg-type,return-value]
        assert failed.value.error.code == "service_unavailable"
        assert (broken.calls, spare.calls) == (1, 0)

    run("asyncio", main())
