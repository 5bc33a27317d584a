"""The configuration schema: msgspec Structs that reject unknown keys.

One Struct per TOML table; the provider tables are in ``config.providers``. Defaults here are
the defaults users get.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Struct, field

from modelmux.config.features import (AnalyticsConfig, AuthConfig, CacheConfig, MetricsConfig,
                                      PriceConfig)
from modelmux.config.providers import MockProviderConfig, ProviderConfig
from modelmux.config.routing import AdminConfig, RoutingConfig
from modelmux.config.settings import H2Settings, ServerLimits
from modelmux.config.state import StateConfig

_LIMITS = ServerLimits()


class CorsConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """Cross-origin access for browser clients; off unless origins are listed."""

    allow_origins: list[str] = field(default_factory=list)
    allow_headers: list[str] = field(
        default_factory=lambda: ["authorization", "content-type", "x-request-id", "openai-organization",
                                 "openai-project", "x-stainless-*", "x-api-key", "anthropic-*",
                                 "x-modelmux-stream-mode", "x-modelmux-cost-sensitive"]
    )
    max_age: int = 600


class TlsConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """TLS termination on the server port: PEM certificate (chain) and private key files."""

    cert_file: str
    key_file: str


class Http2Config(Struct, forbid_unknown_fields=True, frozen=True):
    """What the server advertises in its HTTP/2 SETTINGS, and its flood budgets (docs/http2.md)."""

    max_concurrent_streams: Annotated[int, msgspec.Meta(ge=1)] = 100
    initial_window_size: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] = 65535
    max_frame_size: Annotated[int, msgspec.Meta(ge=16384, le=2**24 - 1)] = 16384
    max_header_list_size: Annotated[int, msgspec.Meta(ge=1024)] = 65536
    max_resets_per_second: Annotated[int, msgspec.Meta(ge=1)] = 200
    max_control_frames_per_second: Annotated[int, msgspec.Meta(ge=1)] = 1000
    max_continuation_frames: Annotated[int, msgspec.Meta(ge=1)] = 32

    def settings(self) -> H2Settings:
        return H2Settings(max_concurrent_streams=self.max_concurrent_streams,
                          initial_window_size=self.initial_window_size,
                          max_frame_size=self.max_frame_size,
                          max_header_list_size=self.max_header_list_size,
                          max_resets_per_second=self.max_resets_per_second,
                          max_control_frames_per_second=self.max_control_frames_per_second,
                          max_continuation_frames=self.max_continuation_frames)


class ServerConfig(Struct, forbid_unknown_fields=True, frozen=True):
    host: str = "127.0.0.1"
    port: int = 3000
    max_head_bytes: int = _LIMITS.max_head_bytes
    max_body_bytes: int = _LIMITS.max_body_bytes
    header_timeout: float = _LIMITS.header_timeout
    body_timeout: float = _LIMITS.body_timeout
    keepalive_timeout: float = _LIMITS.keepalive_timeout
    max_connections: int = _LIMITS.max_connections
    drain_timeout: float = _LIMITS.drain_timeout
    workers: int = 1
    cors: CorsConfig = field(default_factory=CorsConfig)
    tls: TlsConfig | None = None
    http2: Http2Config = field(default_factory=Http2Config)
    http1: Literal["fast", "h11"] = "fast"
    """HTTP/1.1 backend: the native fast path, or h11 (the reference implementation)."""

    def limits(self) -> ServerLimits:
        return ServerLimits(
            max_head_bytes=self.max_head_bytes,
            max_body_bytes=self.max_body_bytes,
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            keepalive_timeout=self.keepalive_timeout,
            max_connections=self.max_connections,
            drain_timeout=self.drain_timeout,
        )


StreamMode = Literal["auto", "standard", "buffered", "never", "always"]


class StreamingConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """How streamed answers reach clients (see docs/streaming.md)."""

    mode: StreamMode = "auto"
    buffer_size: Annotated[int, msgspec.Meta(ge=1, le=10 * 1024 * 1024)] = 4096
    chunk_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 200
    never_clients: list[str] = field(
        default_factory=lambda: ["goose", "openai-organization: basebox", "openai-project: gui",
                                 "postman", "insomnia", "thunder client", "thunderclient"]
    )


class LoggingConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """Log level and format; logs go to stderr, and also to ``file`` when one is named."""

    level: Literal["trace", "debug", "info", "warn", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    file: str | None = None
    debug_bodies: bool = False
    access_log: bool = True
    """One INFO line per request on ``modelmux.access``, buffered; off saves about 2.2 us of
    CPU a request in text, 2.9 us in JSON (native build; about 5.5 and 7.5 us pure-Python)."""


TracesProtocol = Literal["http/protobuf"]


class TelemetryConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """OpenTelemetry tracing, exported over OTLP (needs ``modelmux[otel]``; see
    docs/observability.md). Off by default, and then nothing of OpenTelemetry is imported."""

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    protocol: TracesProtocol = "http/protobuf"
    headers: dict[str, str] = field(default_factory=dict)
    service_name: str = "modelmux"
    sample_ratio: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    batch_delay_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 5000
    export_timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0


class MiddlewareConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """One ``[[middleware]]`` table: a ``modelmux.middleware`` plugin switched on, in order
    (docs/plugins.md). ``options`` goes to the plugin's factory as a dict."""

    name: str
    enabled: bool = True
    options: dict[str, Any] = field(default_factory=dict)


class ModelAlias(Struct, forbid_unknown_fields=True, frozen=True):
    """The table form of a ``[models]`` entry: ``name = { target = "p/m", ignore_case = true }``."""

    target: str
    ignore_case: bool = False


class Config(Struct, forbid_unknown_fields=True, frozen=True):
    """The whole configuration.

    ``models`` maps public model names to ``provider/upstream-model`` (or to a model some
    provider lists); ``"*"`` names the target for any model no provider serves. ``provider``
    also holds plugin types' tables (``PluginProviderConfig`` subclasses): ``load_config``
    decodes those with the plugin's own ``Config``.
    """

    server: ServerConfig = field(default_factory=ServerConfig)
    provider: list[ProviderConfig] = field(default_factory=list)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    models: dict[str, str | ModelAlias] = field(default_factory=dict)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    state: StateConfig = field(default_factory=StateConfig)
    middleware: list[MiddlewareConfig] = field(default_factory=list)
    auth: AuthConfig = field(default_factory=AuthConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    prices: list[PriceConfig] = field(default_factory=list)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)

    def model_aliases(self) -> list[tuple[str, str, bool]]:
        """``[models]`` as (public name, target, ignore_case) triples, in file order."""
        return [(name, alias, False) if isinstance(alias, str)
                else (name, alias.target, alias.ignore_case)
                for name, alias in self.models.items()]


def default_config() -> Config:
    """What ``modelmux serve`` runs with when no config file exists: one mock model."""
    return Config(provider=[MockProviderConfig(name="mock", models=["mock"])])


def decode(data: bytes | str) -> Config:
    """Decode and validate TOML text.

    Raises:
        msgspec.DecodeError / msgspec.ValidationError: invalid TOML or schema violations.
    """
    return msgspec.toml.decode(data, type=Config)
