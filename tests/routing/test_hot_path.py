"""Per-request work the router and dispatcher keep small: no idle wake-ups, an O(1) TTFT
percentile over a sliding window, a deployment id made once."""

from __future__ import annotations

from modelmux.api.dispatch import Dispatcher
from modelmux.api.metrics import GatewayMetrics
from modelmux.config.routing import RoutingConfig
from modelmux.routing.router import Router


def test_a_finish_with_nobody_queued_wakes_nothing() -> None:
    dispatcher = Dispatcher(Router(), RoutingConfig(), GatewayMetrics("t"))
    idle = dispatcher._freed
    dispatcher._wake()
    assert dispatcher._freed is idle and not idle.is_set()
    dispatcher.queued = 1  # someone waits: they are woken and a fresh event is armed
    dispatcher._wake()
    assert idle.is_set() and dispatcher._freed is not idle

