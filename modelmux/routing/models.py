"""The model index: a requested model name → the provider that serves it.

A name listed by a provider's ``models`` selects that provider (the first one listing it);
``provider/model`` addresses one provider explicitly. Pure: built once from the providers.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelmux.errors import ModelNotFound
from modelmux.providers.base import Provider


class ModelIndex:
    """Resolves model names; lists the public ones."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        self.providers = {p.name: p for p in providers}
        self._by_model: dict[str, Provider] = {}
        for provider in self.providers.values():
            for model in provider.models:
                self._by_model.setdefault(model, provider)

    def resolve(self, model: str) -> tuple[Provider, str]:
        """The provider for ``model`` and the model name to send upstream.

        Raises:
            ModelNotFound: no provider serves the model.
        """
        provider = self._by_model.get(model)
        if provider is not None:
            return provider, model
        name, slash, upstream = model.partition("/")
        if slash:
            provider = self.providers.get(name)
            if provider is not None and upstream:
                return provider, upstream
        raise ModelNotFound(
            f"The model `{model}` does not exist or is not served by this gateway.", param="model"
        )

    def public_models(self) -> list[tuple[str, str]]:
        """(model, provider name) for every listed model, in config order."""
        return [(model, provider.name) for model, provider in self._by_model.items()]
