"""The ``azure`` provider: Azure OpenAI, an OpenAI-format API under deployment paths.

Reference: Azure OpenAI "Data plane inference" REST reference. Each configured model is a
deployment: ``{base_url}/openai/deployments/{deployment}/chat/completions?api-version={v}``
(and ``/embeddings``); with ``api_version = "v1"`` the GA v1 API,
``{base_url}/openai/v1/chat/completions`` with the deployment as the body's ``model``. The key
goes in the ``api-key`` header. A prompt the content filter refuses (400, code
``content_filter``) keeps that code for the client; a filtered completion's ``finish_reason:
content_filter`` passes through untouched; a 429's ``Retry-After`` is honoured by the call
stage like any provider's.
"""

from __future__ import annotations

from urllib.parse import quote

import msgspec

from modelmux.config.load import ConfigError
from modelmux.config.schema import AzureConfig
from modelmux.errors import Headers, ModelMuxError
from modelmux.providers.env import expand_env
from modelmux.providers.errors import error_from_response
from modelmux.providers.headers import header_value
from modelmux.providers.openai_compatible import OpenAICompatibleProvider
from modelmux.upstream import ConnectionPool

V1 = "v1"
CONTENT_FILTER = "content_filter"


class _ErrorCode(msgspec.Struct):
    code: str | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorCode | None = None


_error_body = msgspec.json.Decoder(_ErrorBody)


def error_code(body: bytes) -> str | None:
    """The ``error.code`` of an Azure (OpenAI-shaped) error body, if it is a string."""
    try:
        error = _error_body.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return None if error is None else error.code


class AzureProvider(OpenAICompatibleProvider):
    """Azure OpenAI deployments of one resource."""

    type = "azure"

    def __init__(self, config: AzureConfig, pool: ConnectionPool, **kwargs: object) -> None:
        """Raises: ConfigError: ``entra_id`` (not yet supported), no ``api_key``, a bad
        ``api_version``, ``base_url`` or header."""
        where = f"provider {config.name!r}"
        if config.entra_id:
            raise ConfigError(
                f"{where}: entra_id needs Microsoft Entra ID token support (azure-identity), "
                "which ModelMux does not have yet (not yet supported); use api_key")
        if not config.api_key:
            raise ConfigError(f"{where}: azure needs api_key (sent as the api-key header)")
        version = config.api_version.strip()
        if not version or any(c in version for c in "&#?/ "):
            raise ConfigError(f"{where}: api_version {config.api_version!r} is not an API "
                              "version such as 2024-10-21 or v1")
        self.api_version = version
        super().__init__(config, pool, **kwargs)  # type: ignore[arg-type]

    def url_for(self, model: str, path: str) -> str:
        if self.api_version == V1:
            return f"{self.base}/openai/v1{path}"
        deployment = quote(model, safe="")
        return (f"{self.base}/openai/deployments/{deployment}{path}"
                f"?api-version={quote(self.api_version, safe='')}")

    def auth_headers(self, config: AzureConfig) -> Headers:  # type: ignore[override]
        key = expand_env(config.api_key or "", where=f"{self.where}: api_key")
        return [(b"api-key", header_value(key, f"{self.where}: api_key"))]

    def map_error(self, provider: str, status: int, headers: Headers, body: bytes) -> ModelMuxError:
        """The usual table, but a content-filter refusal keeps its ``content_filter`` code."""
        error = error_from_response(provider, status, headers, body)
        if status == 400 and error_code(body) == CONTENT_FILTER:
            error.code = CONTENT_FILTER
        return error
