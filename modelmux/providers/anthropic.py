"""The ``anthropic`` provider: Claude through Anthropic's own Messages API.

Reference: Anthropic API "Messages > Create a Message" (``POST /v1/messages``), "Versioning"
(the ``anthropic-version`` header) and "Authentication" (``x-api-key``). Only the endpoint
profile lives here; translation and streaming are ``claude.ClaudeProvider``'s.
"""

from __future__ import annotations

from modelmux.config.load import ConfigError
from modelmux.config.providers import AnthropicConfig
from modelmux.providers.claude import ClaudeProvider
from modelmux.providers.claude_endpoint import ClaudeEndpoint
from modelmux.providers.env import expand_env
from modelmux.providers.headers import (
    check_base_url,
    extra_headers,
    json_headers,
    merge_headers,
)
from modelmux.providers.base import RetryPolicy
from modelmux.providers.transport import StaticAuth
from modelmux.upstream import ConnectionPool

ANTHROPIC_VERSION = "2023-06-01"


def anthropic_endpoint(config: AnthropicConfig) -> ClaudeEndpoint:
    """The profile for ``POST {base_url}/v1/messages`` with an ``x-api-key``.

    A ``base_url`` ending in ``/v1`` is accepted as if it did not.

    Raises:
        ConfigError: an unset ``${ENV}``, an empty key, a bad ``base_url`` or header.
    """
    where = f"provider {config.name!r}"
    base = check_base_url(expand_env(config.base_url, where=f"{where}: base_url"), where)
    base = base.removesuffix("/v1")
    key = expand_env(config.api_key, where=f"{where}: api_key")
    if not key:
        raise ConfigError(f"{where}: api_key is empty")
    try:
        auth = StaticAuth([(b"x-api-key", key.encode("latin-1"))])
    except UnicodeEncodeError:
        raise ConfigError(f"{where}: api_key is not latin-1 text") from None
    url = base + "/v1/messages"
    count_url = url + "/count_tokens"
    headers = merge_headers(
        json_headers(),
        [(b"anthropic-version", ANTHROPIC_VERSION.encode())],
        extra_headers(config.headers, where),
    )
    return ClaudeEndpoint(url=lambda model, stream: url, headers=headers, auth=auth,
                          count_url=lambda model: count_url)


class AnthropicProvider(ClaudeProvider):
    """Claude models served by api.anthropic.com (or a compatible ``base_url``)."""

    type = "anthropic"

    def __init__(
        self, config: AnthropicConfig, pool: ConnectionPool, *, retry: RetryPolicy | None = None
    ) -> None:
        """Raises: ConfigError: see ``anthropic_endpoint``."""
        super().__init__(
            config.name,
            list(config.models),
            anthropic_endpoint(config),
            pool,
            timeouts=config.timeouts.timeouts(),
            retry=retry or RetryPolicy(max_retries=config.max_retries),
            default_max_tokens=config.default_max_tokens,
            http2=config.http2,
        )
