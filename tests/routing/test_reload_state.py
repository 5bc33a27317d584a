"""A reload keeps the live routing state of the deployments it leaves unchanged.

Driven in-process through ``Reloader.reload``: the old App's in-flight attempt still holds
its slot in the new App, an open circuit stays open and TTFT samples stay; a deployment
whose limits changed starts afresh.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from modelmux.api.app import App
from modelmux.cli.reloader import Reloader
from modelmux.routing.breaker import BreakerState
from modelmux.routing.router import Attempt
from tests.config.helpers import load, write
from tests.upstream import run

CONFIG = """\
[[provider]]
name = "east"
type = "mock"
models = ["m"]

[[routing.group]]
name = "g"
deployments = [
  {{ provider = "east", model = "a", max_concurrent = 1, rpm = 600 }},
  {{ provider = "east", model = "b", max_concurrent = {b} }},
]
"""


def test_a_reload_carries_live_state_over_for_unchanged_deployments(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", CONFIG.format(b=1))

    async def main() -> None:
        old = App(load(tmp_path, path).config)
        a, b = old.models.specs["east/a"], old.models.specs["east/b"]
        held = await old.dispatcher._admit(a, 1)  # an old request in flight on `a`
        assert isinstance(held, Attempt)
        old.router.hold_open("east/a", 30)
        old.router.state(a).ttfts.extend([0.1, 0.2])
        other = await old.dispatcher._admit(b, 1)
        assert isinstance(other, Attempt)
        write(path, CONFIG.format(b=2))  # `b`'s limits change: its state starts afresh
        server: Any = SimpleNamespace(tls=None, limits=None, handler=None)
        reloader = Reloader(argparse.Namespace(), server, old, lambda ns: load(tmp_path, path))
        ok, _ = await reloader.reload()
        new = reloader.app
        assert ok and new is not old
        assert new.pool.budget is old.pool.budget  # one upstream buffer budget a process
        live = new.router.live["east/a"]
        assert live.in_flight == 1 and list(live.ttfts) == [0.1, 0.2]
        assert live.breaker.state(new.router.clock()) is BreakerState.OPEN
        new_a = new.models.specs["east/a"]
        assert isinstance(await new.limits.acquire(new_a, 1), float)  # the old one holds it
        old.router.finish(held, 1)  # the old request ends: its slot frees in the new App
        assert live.in_flight == 0
        lease = await new.limits.acquire(new_a, 1)
        assert not isinstance(lease, float)
        assert new.router.live["east/b"].in_flight == 0  # changed: not carried
        old.router.finish(other, 1)
        await reloader.aclose()

    run("asyncio", main())


def test_a_changed_breaker_policy_starts_carried_breakers_afresh() -> None:
    from modelmux.config.providers import MockProviderConfig
    from modelmux.config.settings import BreakerPolicy
    from modelmux.providers.mock import MockProvider
    from modelmux.routing.models import DeploymentSpec
    from modelmux.routing.router import Router

    spec = DeploymentSpec(MockProvider(MockProviderConfig(name="p", models=["m"])), "m")
    old, new = Router(), Router(policy=BreakerPolicy(cooldown=5.0))
    old.add([spec])
    new.add([spec])
    attempt = old.admit(spec, 1)
    assert attempt is not None
    old.hold_open(spec.id, 30)
    assert new.adopt(old, [spec.id, "p/unknown"]) == [spec.id]
    live = new.live[spec.id]
    assert live.in_flight == 1 and live.breaker.policy.cooldown == 5.0
    assert live.breaker.state(new.clock()) is BreakerState.CLOSED
    old.released(attempt)
    assert live.in_flight == 0
