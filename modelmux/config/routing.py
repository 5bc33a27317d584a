"""The ``[routing]`` and ``[admin]`` tables: model groups, strategy, rules, fallback, breaker.

Schema only (msgspec Structs that reject unknown keys); cross-field checks such as unknown
providers or rule syntax live in ``config.validate_routing``. See docs/routing.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Struct, field

from modelmux.config.settings import BreakerPolicy

Strategy = Literal["round_robin", "weighted", "least_connections", "latency", "cost",
                   "availability", "model_specific", "hybrid"]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Limit = Annotated[int, msgspec.Meta(ge=1)]


class DeploymentConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """One way to serve a group: a provider and the model name sent to it, with its numbers."""

    provider: str
    model: str | None = None
    weight: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 1
    priority: int = 0
    input_cost_per_1k: NonNegative = 0.0
    output_cost_per_1k: NonNegative = 0.0
    tags: list[str] = field(default_factory=list)
    rpm: Limit | None = None
    tpm: Limit | None = None
    max_concurrent: Limit | None = None


class GroupConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """A public model name served by several deployments (``[[routing.group]]``)."""

    name: str
    deployments: list[DeploymentConfig]
    aliases: list[str] = field(default_factory=list)
    strategy: Strategy | None = None
    tags: list[str] = field(default_factory=list)
    fallback_group: str | None = None


class RuleConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``when`` a request matches, send it to ``provider`` or to ``group`` (exactly one)."""

    when: str
    provider: str | None = None
    group: str | None = None


class FallbackConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """Moving on to the next deployment after a failure before the first byte."""

    enabled: bool = True
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=20)] = 3
    backoff: Literal["exponential", "constant"] = "exponential"
    base_ms: NonNegative = 0.0
    max_ms: NonNegative = 2000.0


class BreakerConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``BreakerPolicy`` in config form; seconds for the durations."""

    consecutive_failures: Limit = 5
    error_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    window: Positive = 60.0
    min_requests: Limit = 20
    cooldown: NonNegative = 30.0
    cooldown_multiplier: Annotated[float, msgspec.Meta(ge=1)] = 2.0
    max_cooldown: NonNegative = 600.0
    half_open_probes: Limit = 1

    def __post_init__(self) -> None:
        if self.cooldown > self.max_cooldown:
            raise ValueError("cooldown must not be above max_cooldown")

    def policy(self) -> BreakerPolicy:
        return BreakerPolicy(self.consecutive_failures, self.error_rate, self.window,
                             self.min_requests, self.cooldown, self.cooldown_multiplier,
                             self.max_cooldown, self.half_open_probes)


class HedgingConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """A second attempt at another deployment when the first is slow to its first byte."""

    enabled: bool = False
    delay_ms: Positive = 500.0
    percentile: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    min_samples: Limit = 20


class RoutingConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """How a request picks among the deployments of its model (see docs/routing.md)."""

    strategy: Strategy = "availability"
    queue_timeout_ms: NonNegative = 1000.0
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 12
    group: list[GroupConfig] = field(default_factory=list)
    rules: list[RuleConfig] = field(default_factory=list)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    hedging: HedgingConfig = field(default_factory=HedgingConfig)


class AdminConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """The admin API (``/admin/...``) and dashboard: off unless a key is set (or the listener
    is loopback with no key). Clients send a key as a bearer or sign in with it; ``key`` may
    change things, ``viewer_key`` may only look."""

    key: str | None = None
    viewer_key: str | None = None
