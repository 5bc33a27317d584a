"""Per-request work the router and dispatcher keep small: no idle wake-ups, an O(1) TTFT
percentile over a sliding window, a deployment id made once."""

from __future__ import annotations

import math
import random

import pytest

from modelmux.pipeline.call import Dispatcher
from modelmux.config.routing import RoutingConfig
from modelmux.config.providers import MockProviderConfig
from modelmux.observability.gateway import GatewayMetrics
from modelmux.providers.mock import MockProvider
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.router import TTFT_SAMPLES, Router


def _spec(model: str = "m") -> DeploymentSpec:
    return DeploymentSpec(MockProvider(MockProviderConfig(name="p", models=[model])), model)


def test_a_finish_with_nobody_queued_wakes_nothing() -> None:
    dispatcher = Dispatcher(Router(), RoutingConfig(), GatewayMetrics("t"))
    idle = dispatcher._freed
    dispatcher._wake()
    assert dispatcher._freed is idle and not idle.is_set()
    dispatcher.queued = 1  # someone waits: they are woken and a fresh event is armed
    dispatcher._wake()
    assert idle.is_set() and dispatcher._freed is not idle


@pytest.mark.parametrize("q", [0, 1, 50, 90, 95, 99.9, 100])
def test_the_ttft_percentile_is_the_nearest_rank_of_the_last_samples(q: float) -> None:
    rand = random.Random(7)
    live = Router().state(_spec())
    assert live.ttft_percentile(q) is None
    values = [round(rand.random(), 2) for _ in range(TTFT_SAMPLES * 2 + 17)]  # with ties
    for count, value in enumerate(values, 1):
        live.ttfts.append(value)
        if count % 97 == 0 or count == len(values):
            window = sorted(values[max(0, count - TTFT_SAMPLES):count])
            rank = min(len(window) - 1, max(0, math.ceil(q / 100 * len(window)) - 1))
            assert live.ttft_percentile(q) == window[rank]
            assert len(live.ttfts) == len(window)
    assert list(live.ttfts) == values[-TTFT_SAMPLES:]  # arrival order kept


def test_a_deployment_id_is_made_once_and_equal_specs_stay_equal() -> None:
    spec = _spec()
    assert spec.id == "p/m" and spec.id is spec.id
    twin = DeploymentSpec(spec.provider, "m")
    assert twin == spec and hash(twin) == hash(spec) and twin.id == spec.id
    assert DeploymentSpec(spec.provider, "*").id == "p/*"
