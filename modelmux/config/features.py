"""Settings of the team features: ``[auth]`` (tenancy), ``[cache]``, ``[[prices]]`` and
``[analytics]`` (spend), ``[metrics]``. Each is off, or harmless, when its table is absent."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Struct, field


JWT_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                            "ES256", "ES384", "ES512"})
"""What ``[auth.jwt] algorithms`` may list: public-key signatures only (no "none", no HS*)."""


class JwtConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``[auth.jwt]``: bearer JWTs (RS256/ES256) accepted beside keys; claims map to the
    caller's user, team and role. One of ``jwks_url`` and ``jwks_file`` is required."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: str | None = None
    user_claim: str = "sub"
    team_claim: str = "team"
    role_claim: str = "role"
    algorithms: list[str] = field(default_factory=lambda: ["RS256", "ES256"])
    leeway_seconds: Annotated[float, msgspec.Meta(ge=0, le=600)] = 30.0
    jwks_refresh_seconds: Annotated[float, msgspec.Meta(ge=1, le=86_400)] = 300.0


class AuthConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``[auth]``: who may call. Mode "none" serves anyone and is allowed only when every
    listening address is loopback, unless ``allow_unauthenticated`` is true."""

    mode: Literal["none", "keys"] = "none"
    master_key: str | None = None
    store: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: str | None = None  # default: modelmux.db in the state directory
    postgres_dsn: str | None = None
    allow_unauthenticated: bool = False
    key_cache_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 60.0
    failed_auth_per_minute: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 30
    jwt: JwtConfig | None = None


class MetricsConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``[metrics]``: with auth on, /metrics needs a viewer credential unless ``public``."""

    public: bool = False


class CacheRule(Struct, forbid_unknown_fields=True, frozen=True):
    """One ``[[cache.rules]]`` entry: exactly one of ``cache_if`` and ``skip_if`` (routing DSL)."""

    cache_if: str | None = None
    skip_if: str | None = None


class CacheConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``[cache]``: the response cache (docs/cache.md). ``namespace`` decides who shares
    hits when auth is on: "team" (default), "key", or "global"."""

    enabled: bool = False
    backend: Literal["memory", "redis"] = "memory"
    ttl_seconds: Annotated[float, msgspec.Meta(gt=0, le=31_536_000)] = 300.0
    max_bytes: Annotated[int, msgspec.Meta(ge=0)] = 268_435_456
    max_entry_bytes: Annotated[int, msgspec.Meta(ge=0)] = 8_388_608
    namespace: Literal["team", "key", "global"] = "team"
    rules: list[CacheRule] = field(default_factory=list)


class PriceConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """One ``[[prices]]`` entry, USD per million tokens of the upstream model name."""

    model: str
    input_per_mtok: Annotated[float, msgspec.Meta(ge=0)]
    output_per_mtok: Annotated[float, msgspec.Meta(ge=0)]
    cached_input_per_mtok: Annotated[float, msgspec.Meta(ge=0)] | None = None
    cache_write_per_mtok: Annotated[float, msgspec.Meta(ge=0)] | None = None


class CostTrackingConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``[analytics.cost_tracking]``: cost per request, the global budget and its alerts.

    ``enabled`` unset means on when something uses cost: ``[auth] mode = "keys"`` (budgets
    and the spend log per key), ``[analytics] spend_log = true`` or a ``monthly_budget``; off
    otherwise, so the default gateway's request path carries none of it."""

    enabled: bool | None = None
    monthly_budget: Annotated[float, msgspec.Meta(ge=0)] | None = None
    alert_at: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    alert_webhook: str | None = None
    alert_email: list[str] = field(default_factory=list)
    forecast_interval: Annotated[float, msgspec.Meta(gt=0)] = 300.0  # seconds between checks


class UsageReportsConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``[analytics.usage_reports]``: scheduled totals by team, key and model."""

    schedule: Literal["daily", "weekly"] = "daily"
    destinations: list[Literal["webhook", "email"]] = field(default_factory=list)
    webhook: str | None = None
    email: list[str] = field(default_factory=list)


class SmtpConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``[analytics.smtp]``: where alert and report emails go out."""

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    sender: str = "modelmux@localhost"


class AnalyticsConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``[analytics]``: cost tracking, the spend log and usage reports (docs/spend.md)."""

    cost_tracking: CostTrackingConfig = field(default_factory=CostTrackingConfig)
    usage_reports: UsageReportsConfig | None = None
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    spend_log_retention_days: Annotated[int, msgspec.Meta(ge=1)] = 400
    spend_log: bool | None = None  # None: kept when [auth] mode = "keys" (a store exists)

    def cost_tracking_on(self, auth_mode: str) -> bool:
        """Whether cost is tracked: ``cost_tracking.enabled``, or when unset, whether auth
        keys, the spend log or a global budget need it."""
        enabled = self.cost_tracking.enabled
        if enabled is not None:
            return enabled
        return (auth_mode == "keys" or bool(self.spend_log)
                or self.cost_tracking.monthly_budget is not None)
