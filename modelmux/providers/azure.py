"""The ``azure`` provider: Azure OpenAI, an OpenAI-format API under deployment paths.

Reference: Azure OpenAI "Data plane inference" REST reference. Each configured model is a
deployment: ``{base_url}/openai/deployments/{deployment}/chat/completions?api-version={v}``
(and ``/embeddings``); with ``api_version = "v1"`` the GA v1 API,
``{base_url}/openai/v1/chat/completions`` with the deployment as the body's ``model``. The key
goes in the ``api-key`` header; with ``entra_id`` a Microsoft Entra ID bearer token does instead
(``auth.entra``). A prompt the content filter refuses (400, code
``content_filter``) keeps that code for the client; a filtered completion's ``finish_reason:
content_filter`` passes through untouched; a 429's ``Retry-After`` is honoured by the call
stage like any provider's.
"""

from __future__ import annotations

from urllib.parse import quote

import msgspec

from modelmux.auth.entra import EntraAuth, EntraTokenSource
from modelmux.config.load import ConfigError
from modelmux.config.providers import AzureConfig
from modelmux.errors import Headers, ModelMuxError
from modelmux.providers.env import expand_env
from modelmux.providers.errors import error_from_response
from modelmux.providers.headers import check_base_url, header_value
from modelmux.providers.openai_compatible import OpenAICompatibleProvider
from modelmux.providers.transport import Auth
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
        """Raises: ConfigError: no ``api_key`` and no ``entra_id``, incomplete client
        credentials, a bad ``api_version``, ``base_url`` or header."""
        where = f"provider {config.name!r}"
        self.tokens: EntraTokenSource | None = None
        if config.entra_id:
            given = [k for k in ("tenant_id", "client_secret") if getattr(config, k)]
            if given and not (config.tenant_id and config.client_id and config.client_secret):
                raise ConfigError(f"{where}: entra_id with client credentials needs tenant_id, "
                                  "client_id and client_secret (or none of tenant_id and "
                                  "client_secret, for managed identity)")
        elif not config.api_key:
            raise ConfigError(f"{where}: azure needs api_key (sent as the api-key header), "
                              "or entra_id = true")
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

    def build_auth(self, config: AzureConfig, pool: ConnectionPool) -> Auth:  # type: ignore[override]
        """The ``api-key`` header, or Entra ID bearer tokens when ``entra_id`` is set."""
        if not config.entra_id:
            return super().build_auth(config, pool)
        where = self.where
        secret = config.client_secret
        self.tokens = EntraTokenSource(
            pool, label=where,
            tenant_id=expand_env(config.tenant_id, where=f"{where}: tenant_id")
            if config.tenant_id else None,
            client_id=expand_env(config.client_id, where=f"{where}: client_id")
            if config.client_id else None,
            client_secret=expand_env(secret, where=f"{where}: client_secret") if secret else None,
            authority_host=check_base_url(config.authority_host, f"{where}: authority_host"))
        return EntraAuth(self.tokens)

    async def aclose(self) -> None:
        if self.tokens is not None:
            await self.tokens.aclose()

    def auth_headers(self, config: AzureConfig) -> Headers:  # type: ignore[override]
        key = expand_env(config.api_key or "", where=f"{self.where}: api_key")
        return [(b"api-key", header_value(key, f"{self.where}: api_key"))]

    def map_error(self, provider: str, status: int, headers: Headers, body: bytes) -> ModelMuxError:
        """The usual table, but a content-filter refusal keeps its ``content_filter`` code."""
        error = error_from_response(provider, status, headers, body)
        if status == 400 and error_code(body) == CONTENT_FILTER:
            error.code = CONTENT_FILTER
        return error
