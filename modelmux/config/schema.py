"""The configuration schema: msgspec Structs that reject unknown keys.

One Struct per TOML table. Provider tables are a tagged union on ``type`` so each provider type
validates its own fields. Defaults here are the defaults users get.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Struct, field

from modelmux.config.features import (AnalyticsConfig, AuthConfig, CacheConfig, MetricsConfig,
                                      PriceConfig)
from modelmux.config.routing import AdminConfig, RoutingConfig
from modelmux.config.settings import H2Settings, ServerLimits, Timeouts
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


class MockProviderConfig(Struct, tag_field="type", tag="mock", forbid_unknown_fields=True, frozen=True):
    """The built-in deterministic provider for demos, tests and benchmarks."""

    name: str
    models: list[str]
    text: str = "Hello from ModelMux! This answer comes from the built-in mock provider."
    repeat: int = 1
    chunks: int = 10
    chunk_delay_ms: float = 0.0
    usage: bool = True


PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]


class TimeoutsConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """Seconds per phase of one upstream request (see ``modelmux.upstream.Timeouts``)."""

    connect: PositiveSeconds = 10.0
    first_byte: PositiveSeconds = 60.0
    read: PositiveSeconds = 300.0
    pool: PositiveSeconds = 30.0

    def timeouts(self) -> Timeouts:
        return Timeouts(connect=self.connect, first_byte=self.first_byte, read=self.read,
                        pool=self.pool)


MaxRetries = Annotated[int, msgspec.Meta(ge=0, le=10)]
MaxTokens = Annotated[int, msgspec.Meta(ge=1)]
TokenizerFile = str | dict[str, str] | None
"""``tokenizer``: a Hugging Face ``tokenizer.json`` that count_tokens estimates with, for all the
provider's models or as a table by model (docs/messages.md#count_tokens)."""


class OpenAICompatibleConfig(Struct, tag_field="type", tag="openai_compatible",
                             forbid_unknown_fields=True, frozen=True):
    """Any server of ``POST {base_url}/chat/completions``: vLLM, llama.cpp, LM Studio, OpenAI.

    ``api_key``, ``base_url`` and header values may hold ``${ENV}`` references.
    """

    name: str
    models: list[str]
    base_url: str
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    max_retries: MaxRetries = 2
    http2: bool | None = None  # unset: ALPN over TLS; true: HTTP/2 only; false: HTTP/1.1 only
    embed_batch_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 2048
    tokenize: Literal["vllm", "llamacpp"] | None = None  # count_tokens asks the server to count
    tokenizer: TokenizerFile = None


class AnthropicConfig(Struct, tag_field="type", tag="anthropic", forbid_unknown_fields=True,
                      frozen=True):
    """Claude through Anthropic's Messages API, ``POST {base_url}/v1/messages``."""

    name: str
    models: list[str]
    api_key: str = "${ANTHROPIC_API_KEY}"
    base_url: str = "https://api.anthropic.com"
    default_max_tokens: MaxTokens = 4096
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    max_retries: MaxRetries = 2
    http2: bool | None = None  # unset: ALPN over TLS; true: HTTP/2 only; false: HTTP/1.1 only


class VertexConfig(Struct, tag_field="type", tag="vertex", forbid_unknown_fields=True,
                   frozen=True):
    """Claude (``rawPredict`` / ``streamRawPredict``), Gemini (``generateContent``) and Google
    text embedding models (``predict``) on Google Vertex AI.

    At most one of ``credentials_file``, ``credentials_json`` (inline JSON) and
    ``credentials_env`` (name of a variable holding base64 JSON); none means Application
    Default Credentials.
    """

    name: str
    models: list[str]
    project: str
    region: str
    base_url: str | None = None
    credentials_file: str | None = None
    credentials_json: str | None = None
    credentials_env: str | None = None
    default_max_tokens: MaxTokens = 4096
    embed_batch_size: Annotated[int, msgspec.Meta(ge=1, le=250)] = 250  # :predict instances
    embed_task_type: str | None = None  # task_type of every embed instance
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    max_retries: MaxRetries = 2
    http2: bool | None = None  # unset: ALPN over TLS; true: HTTP/2 only; false: HTTP/1.1 only

    def __post_init__(self) -> None:
        given = [name for name in ("credentials_file", "credentials_json", "credentials_env")
                 if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of {', '.join(given)}")


class GeminiConfig(Struct, tag_field="type", tag="gemini", forbid_unknown_fields=True,
                   frozen=True):
    """Gemini through Google AI Studio: ``POST {base_url}/v1beta/models/{model}:generateContent``
    with an ``x-goog-api-key``."""

    name: str
    models: list[str]
    api_key: str = "${GEMINI_API_KEY}"
    base_url: str = "https://generativelanguage.googleapis.com"
    embed_batch_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100  # batchEmbedContents
    embed_task_type: str | None = None  # taskType of every embed request, e.g. RETRIEVAL_QUERY
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    max_retries: MaxRetries = 2
    http2: bool | None = None  # unset: ALPN over TLS; true: HTTP/2 only; false: HTTP/1.1 only


EmbedBatch = Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class OpenAIConfig(Struct, tag_field="type", tag="openai", forbid_unknown_fields=True,
                   frozen=True):
    """OpenAI's own API: ``openai_compatible`` plus its organization/project headers."""

    name: str
    models: list[str]
    api_key: str = "${OPENAI_API_KEY}"
    base_url: str = "https://api.openai.com/v1"
    organization: str | None = None
    project: str | None = None
    embed_batch_size: EmbedBatch = 2048
    tokenizer: TokenizerFile = None
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    max_retries: MaxRetries = 2
    http2: bool | None = None  # unset: ALPN over TLS; true: HTTP/2 only; false: HTTP/1.1 only


CohereInputType = Literal["search_document", "search_query", "classification", "clustering"]


class CohereConfig(Struct, tag_field="type", tag="cohere", forbid_unknown_fields=True,
                   frozen=True):
    """Cohere's v2 API, ``POST {base_url}/v2/chat`` and ``/v2/embed`` with ``Authorization:
    Bearer``; ``embed_input_type`` is the ``input_type`` of embed requests that name none."""

    name: str
    models: list[str]
    api_key: str = "${COHERE_API_KEY}"
    base_url: str = "https://api.cohere.com"
    embed_batch_size: Annotated[int, msgspec.Meta(ge=1, le=96)] = 96  # texts per /v2/embed
    embed_input_type: CohereInputType = "search_document"
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    max_retries: MaxRetries = 2
    http2: bool | None = None  # unset: ALPN over TLS; true: HTTP/2 only; false: HTTP/1.1 only


class HuggingFaceConfig(Struct, tag_field="type", tag="huggingface", forbid_unknown_fields=True,
                        frozen=True):
    """Hugging Face's router, or any TGI / Inference Endpoint URL (OpenAI-compatible)."""

    name: str
    models: list[str]
    api_key: str | None = "${HF_TOKEN}"
    base_url: str = "https://router.huggingface.co/v1"
    embed_batch_size: EmbedBatch = 256
    tokenizer: TokenizerFile = None
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    max_retries: MaxRetries = 2
    http2: bool | None = None  # unset: ALPN over TLS; true: HTTP/2 only; false: HTTP/1.1 only


class AzureConfig(Struct, tag_field="type", tag="azure", forbid_unknown_fields=True, frozen=True):
    """Azure OpenAI: ``base_url`` is the resource endpoint, ``models`` are deployment names;
    ``api_version = "v1"`` picks the GA v1 paths (model in the body). ``entra_id`` swaps the
    ``api_key`` for Entra ID tokens: client credentials (``tenant_id``, ``client_id``,
    ``client_secret``) or, without a secret, managed identity."""

    name: str
    models: list[str]
    base_url: str
    api_version: str
    api_key: str | None = "${AZURE_OPENAI_API_KEY}"
    entra_id: bool = False
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    authority_host: str = "https://login.microsoftonline.com"
    embed_batch_size: EmbedBatch = 2048
    tokenizer: TokenizerFile = None
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    max_retries: MaxRetries = 2
    http2: bool | None = None  # unset: ALPN over TLS; true: HTTP/2 only; false: HTTP/1.1 only


class BedrockConfig(Struct, tag_field="type", tag="bedrock", forbid_unknown_fields=True,
                    frozen=True):
    """AWS Bedrock's Converse API, SigV4-signed; ``base_url`` defaults to
    ``https://bedrock-runtime.{region}.amazonaws.com``. Without ``access_key_id`` and
    ``secret_access_key`` the standard AWS credential chain is used (docs/providers.md)."""

    name: str
    models: list[str]
    region: str
    base_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    embed_input_type: Literal["search_document", "search_query", "classification",
                              "clustering"] = "search_document"  # Cohere embed models
    claude_models: list[str] = field(default_factory=list)  # e.g. application profile ARNs
    tokenizer: TokenizerFile = None
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    max_retries: MaxRetries = 2
    http2: bool | None = None  # unset: ALPN over TLS; true: HTTP/2 only; false: HTTP/1.1 only


ProviderConfig = (MockProviderConfig | OpenAICompatibleConfig | AnthropicConfig | VertexConfig
                  | GeminiConfig | CohereConfig | OpenAIConfig | HuggingFaceConfig
                  | AzureConfig | BedrockConfig)


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
    """One INFO line per request on ``modelmux.access``, buffered; off saves ~7 us a request."""


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
