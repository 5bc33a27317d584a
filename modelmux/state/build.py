"""Pick the limit store ``[state]`` asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.config.state import StateConfig
from modelmux.routing.memory import MemoryLimits
from modelmux.routing.store import LimitStore

if TYPE_CHECKING:
    from modelmux.observability.gateway import GatewayMetrics
    from modelmux.routing.router import Router
    from modelmux.state.breakers import SharedBreakers


def build_limits(config: StateConfig, workers: int,
                 metrics: GatewayMetrics | None = None) -> LimitStore:
    """This process's buckets (1/``workers`` of each limit), or Redis with them as fallback.

    With Redis the limits are global, whole, shared by every worker and host.

    Raises:
        ConfigError: ``backend = "redis"`` without the ``redis`` package.
    """
    local = MemoryLimits(share=workers)
    if config.backend == "memory":
        return local
    from modelmux.state.redis import RedisLimits

    return RedisLimits(config, local, metrics=metrics)


def shared_breakers(config: StateConfig, limits: LimitStore, router: Router
                    ) -> SharedBreakers | None:
    """With Redis and ``share_breakers``: circuit openings published and applied across
    replicas, wired into ``router``; else None."""
    from modelmux.state.redis import RedisLimits

    if not (config.share_breakers and isinstance(limits, RedisLimits)):
        return None
    from modelmux.state.breakers import SharedBreakers

    shared = SharedBreakers(limits, router.hold_open, config.breaker_sync_ms / 1000)
    router.on_open = shared.opened
    return shared
