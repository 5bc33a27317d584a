"""Maps a provider table's ``type`` to the class that serves it, and builds it.

Every provider that talks to an upstream borrows connections from the one ``ConnectionPool``
the application owns; building a provider does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from modelmux.config.plugins import PluginProviderConfig
from modelmux.config.providers import (
    AnthropicConfig,
    BedrockConfig,
    CohereConfig,
    GeminiConfig,
    AzureConfig,
    HuggingFaceConfig,
    MockProviderConfig,
    OpenAICompatibleConfig,
    OpenAIConfig,
    ProviderConfig,
    VertexConfig,
)
from modelmux.providers.anthropic import AnthropicProvider
from modelmux.providers.base import Provider
from modelmux.providers.bedrock import BedrockProvider
from modelmux.providers.cohere import CohereProvider
from modelmux.providers.gemini import build_gemini
from modelmux.providers.azure import AzureProvider
from modelmux.providers.mock import MockProvider
from modelmux.providers.openai import HuggingFaceProvider, OpenAIProvider
from modelmux.providers.openai_compatible import OpenAICompatibleProvider
from modelmux.providers.plugins import build_plugin_provider
from modelmux.providers.vertex import VertexProvider
from modelmux.upstream import ConnectionPool

PROVIDERS: Mapping[type[Any], Callable[[Any, ConnectionPool], Provider]] = MappingProxyType(
    {
        MockProviderConfig: lambda config, pool: MockProvider(config),
        OpenAICompatibleConfig: OpenAICompatibleProvider,
        AnthropicConfig: AnthropicProvider,
        VertexConfig: VertexProvider,
        GeminiConfig: build_gemini,
        CohereConfig: CohereProvider,
        OpenAIConfig: OpenAIProvider,
        HuggingFaceConfig: HuggingFaceProvider,
        AzureConfig: AzureProvider,
        BedrockConfig: BedrockProvider,
    }
)
"""Config Struct (one per ``type``) → constructor taking (config, pool)."""


def build_provider(config: ProviderConfig | PluginProviderConfig,
                   pool: ConnectionPool | None = None) -> Provider:
    """Construct the provider for one ``[[provider]]`` table (a plugin type's too).

    ``pool`` may be omitted only for providers with no upstream (``mock``); a plugin gets it
    as given.

    Raises:
        ConfigError: a setting is unusable (unset ``${ENV}``, bad URL, unreadable credentials),
            or a plugin cannot be loaded or built.
        TypeError: an unknown config type, or an upstream provider without a pool.
    """
    if isinstance(config, PluginProviderConfig):
        return build_plugin_provider(config, pool)
    build = PROVIDERS.get(type(config))
    if build is None:
        raise TypeError(f"unknown provider config {type(config).__name__}")
    if pool is None and not isinstance(config, MockProviderConfig):
        raise TypeError(f"provider {config.name!r} needs a connection pool")
    return build(config, pool)  # type: ignore[arg-type]
