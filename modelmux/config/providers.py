"""The provider tables of the configuration: a tagged union on ``type``, so each provider type
validates its own fields. Defaults here are the defaults users get (docs/providers.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Struct, field

from modelmux.config.settings import Timeouts


EmbedBatch = Annotated[int, msgspec.Meta(ge=1, le=100_000)]


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
    embed_batch_size: EmbedBatch = 2048
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
