"""Hedging: a second attempt when the first is slow to its first byte; the first byte wins.

``p0`` stalls (sends nothing until its client leaves), ``p1`` answers at once: the hedge at
``p1`` wins and the stalled attempt is cancelled, which closes its upstream connection. The
test ends the hedge delay itself (``HedgeTimer``), so the machine's speed decides nothing.
"""

from __future__ import annotations

import asyncio

import pytest

from modelmux.config.routing import HedgingConfig, RoutingConfig
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.router import Router
from tests.observability.helpers import scrape, value
from tests.routing.scripted import HedgeTimer, served_by, upstreams
from tests.upstream import run

HEDGED = """
[routing.hedging]
enabled = true
delay_ms = {delay}
"""


@pytest.mark.parametrize("stream", [False, True])
def test_a_stalled_first_attempt_is_hedged_and_cancelled(stream: bool) -> None:
    async def main() -> None:
        async with upstreams(2, HEDGED.format(delay=20)) as (fakes, gw):
            timer = HedgeTimer(gw)
            fakes[0].faults.append("stall")
            asking = asyncio.ensure_future(served_by(gw, stream))
            await fakes[0].wait_for(lambda: len(fakes[0].requests) == 1)
            assert timer.delays == [0.02] and not fakes[1].requests  # no hedge before the delay
            timer.fire()
            assert await asyncio.wait_for(asking, 5) == ("p1", "2")
            await fakes[0].wait_for(lambda: fakes[0].peer_left == 1)  # its upstream was closed
            assert value(await scrape(gw.port), "modelmux_hedges_total") == 1
            router = gw.app.router
            assert [router.live[f"p{i}/m"].in_flight for i in range(2)] == [0, 0]
            assert router.breaker("p0/m").snapshot(router.clock())["window_failures"] == 0
            # an answer before the delay ends: no hedge (the timer is never fired)
            assert await served_by(gw, stream) == ("p0", "1")
            assert timer.delays == [0.02, 0.02] and len(fakes[1].requests) == 1
            assert value(await scrape(gw.port), "modelmux_hedges_total") == 1

    run("asyncio", main())


def test_no_hedge_when_the_first_answers_within_the_delay() -> None:
    async def main() -> None:
        async with upstreams(2, HEDGED.format(delay=5000)) as (fakes, gw):
            for stream in (False, True):
                assert await served_by(gw, stream) == ("p0", "1")
            assert not fakes[1].requests

    run("asyncio", main())


def test_the_hedge_delay_follows_a_ttft_percentile_once_there_are_samples() -> None:
    from modelmux.pipeline.call import Dispatcher
    from modelmux.config.providers import MockProviderConfig
    from modelmux.observability.gateway import GatewayMetrics
    from modelmux.providers.mock import MockProvider

    async def main() -> None:
        hedging = HedgingConfig(enabled=True, delay_ms=800, percentile=90, min_samples=10)
        router = Router()
        dispatcher = Dispatcher(router, RoutingConfig(hedging=hedging), GatewayMetrics("t"))
        spec = DeploymentSpec(MockProvider(MockProviderConfig(name="a", models=["m"])), "m")
        attempt = router.admit(spec, 1)
        assert not isinstance(attempt, (float, type(None)))
        assert dispatcher._hedge_delay(attempt) == 0.8  # too few samples: the fixed delay
        router.state(spec).ttfts.extend(i / 100 for i in range(1, 21))  # 0.01 .. 0.20
        assert dispatcher._hedge_delay(attempt) == pytest.approx(0.18)

    run("asyncio", main())


def test_a_client_leaving_mid_race_cancels_both_attempts_and_frees_their_slots() -> None:
    from tests.upstream import until

    async def main() -> None:
        async with upstreams(2, HEDGED.format(delay=20)) as (fakes, gw):
            timer = HedgeTimer(gw)
            for fake in fakes:
                fake.faults.append("stall")
            asking = asyncio.ensure_future(served_by(gw))
            await fakes[0].wait_for(lambda: len(fakes[0].requests) == 1)
            timer.fire()
            await fakes[1].wait_for(lambda: len(fakes[1].requests) == 1)  # both attempts race
            asking.cancel()  # the client leaves
            with pytest.raises(asyncio.CancelledError):
                await asking
            for fake in fakes:  # both upstream connections were closed
                await fake.wait_for(lambda f=fake: f.peer_left == 1)  # type: ignore[misc]
            router = gw.app.router
            await until(lambda: all(router.live[f"p{i}/m"].in_flight == 0 for i in range(2)))
            assert all(router.breaker(f"p{i}/m").snapshot(router.clock())["window_failures"] == 0
                       for i in range(2))

    run("asyncio", main())
