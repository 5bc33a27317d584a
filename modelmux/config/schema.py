"""The configuration schema: msgspec Structs that reject unknown keys.

One Struct per TOML table. Provider tables are a tagged union on ``type`` so each provider type
validates its own fields. Defaults here are the defaults users get.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct, field

from modelmux.server.limits import ServerLimits


_LIMITS = ServerLimits()


class CorsConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """Cross-origin access for browser clients; off unless origins are listed."""

    allow_origins: list[str] = field(default_factory=list)
    allow_headers: list[str] = field(
        default_factory=lambda: ["authorization", "content-type", "x-request-id", "openai-organization",
                                 "openai-project", "x-stainless-*"]
    )
    max_age: int = 600


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


class MockProviderConfig(Struct, tag_field="type", tag="mock", forbid_unknown_fields=True, frozen=True):
    """The built-in deterministic provider for demos, tests and benchmarks."""

    name: str
    models: list[str]
    text: str = "Hello from ModelMux! This answer comes from the built-in mock provider."
    repeat: int = 1
    chunks: int = 10
    chunk_delay_ms: float = 0.0
    usage: bool = True


ProviderConfig = MockProviderConfig


class LoggingConfig(Struct, forbid_unknown_fields=True, frozen=True):
    level: str = "info"


class Config(Struct, forbid_unknown_fields=True, frozen=True):
    """The whole configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    provider: list[ProviderConfig] = field(default_factory=list)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


def default_config() -> Config:
    """What ``modelmux serve`` runs with when no config file exists: one mock model."""
    return Config(provider=[MockProviderConfig(name="mock", models=["mock"])])


def decode(data: bytes | str) -> Config:
    """Decode and validate TOML text.

    Raises:
        msgspec.DecodeError / msgspec.ValidationError: invalid TOML or schema violations.
    """
    return msgspec.toml.decode(data, type=Config)
