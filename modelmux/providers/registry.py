"""Maps a provider table's ``type`` to the class that serves it."""

from __future__ import annotations

from modelmux.config.schema import MockProviderConfig, ProviderConfig
from modelmux.providers.base import Provider
from modelmux.providers.mock import MockProvider


def build_provider(config: ProviderConfig) -> Provider:
    """Construct the provider for one ``[[provider]]`` table."""
    if isinstance(config, MockProviderConfig):
        return MockProvider(config)
    raise TypeError(f"unknown provider config {type(config).__name__}")
