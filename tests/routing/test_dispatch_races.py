"""The dispatcher's hedge race under cancellation, driven directly with scripted providers.

``Scripted`` is a provider whose stream either answers at once or stalls until cancelled,
then spends as long as the test says cleaning up: the window in which a client may leave.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from modelmux.api.dispatch import Dispatcher
from modelmux.api.metrics import GatewayMetrics
from modelmux.config.routing import FallbackConfig, HedgingConfig, RoutingConfig
from modelmux.providers.base import CallStats, Provider
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.router import Router
from tests.upstream import run


class Scripted(Provider):
    """``stall``: no first byte until cancelled, then wait for ``release`` before giving up."""

    def __init__(self, name: str, *, stall: bool) -> None:
        super().__init__(name, ["m"])
        self.stall = stall
        self.cleaning = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = 0

    async def complete(self, call: Any) -> bytes:
        raise NotImplementedError

    async def stream(self, call: Any) -> AsyncGenerator[bytes, None]:  # type: ignore[override]
        try:
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


def hedged(**fallback: Any) -> RoutingConfig:
    return RoutingConfig(hedging=HedgingConfig(enabled=True, delay_ms=1),
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

