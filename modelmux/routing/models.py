"""The model index: a requested model name → the provider that serves it.

A name listed by a provider's ``models`` selects that provider (the first one listing it);
``provider/model`` addresses one provider explicitly. Aliases (the config's ``[models]``) give
public names to those targets, optionally matched ignoring case; the alias ``*`` catches any
name nothing else serves. Pure: built once from the providers.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelmux.errors import ModelNotFound
from modelmux.providers.base import Provider

FALLBACK = "*"


class ModelIndex:
    """Resolves model names; lists the public ones."""

    def __init__(self, providers: Iterable[Provider],
                 aliases: Iterable[tuple[str, str, bool]] = ()) -> None:
        """``aliases`` are (public name, target, ignore_case); the first of a name wins."""
        self.providers = {p.name: p for p in providers}
        self._by_model: dict[str, Provider] = {}
        self._all_by_model: dict[str, list[Provider]] = {}
        for provider in self.providers.values():
            for model in provider.models:
                self._by_model.setdefault(model, provider)
                serving = self._all_by_model.setdefault(model, [])
                if provider not in serving:
                    serving.append(provider)
        self._aliases: dict[str, str] = {}
        self._folded: dict[str, str] = {}
        self._fallback: str | None = None
        for name, target, ignore_case in aliases:
            if name == FALLBACK:
                self._fallback = self._fallback or target
                continue
            self._aliases.setdefault(name, target)
            if ignore_case:
                self._folded.setdefault(name.casefold(), target)

    def _lookup(self, model: str) -> tuple[Provider, str] | None:
        provider = self._by_model.get(model)
        if provider is not None:
            return provider, model
        name, slash, upstream = model.partition("/")
        if slash:
            provider = self.providers.get(name)
            if provider is not None and upstream:
                return provider, upstream
        return None

    def _targets(self, model: str) -> tuple[str | None, ...]:
        return (self._aliases.get(model), model, self._folded.get(model.casefold()),
                self._fallback)

    def resolve(self, model: str) -> tuple[Provider, str]:
        """The provider for ``model`` and the model name to send upstream.

        Order: an alias of that exact name, a listed model, ``provider/model``, an alias
        matched ignoring case, then the ``*`` alias.

        Raises:
            ModelNotFound: no provider serves the model.
        """
        for target in self._targets(model):
            if target is not None:
                found = self._lookup(target)
                if found is not None:
                    return found
        raise _not_found(model)

    def candidates(self, model: str) -> list[tuple[Provider, str]]:
        """Every (provider, upstream model) that may serve ``model``, in config order.

        The name resolves as in ``resolve`` (whose answer is always the first candidate); a
        listed model then brings every provider listing it, while ``provider/model`` names
        exactly one provider.

        Raises:
            ModelNotFound: no provider serves the model.
        """
        for target in self._targets(model):
            if target is None:
                continue
            serving = self._all_by_model.get(target)
            if serving:
                return [(provider, target) for provider in serving]
            found = self._lookup(target)
            if found is not None:
                return [found]
        raise _not_found(model)

    def public_models(self) -> list[tuple[str, str]]:
        """(model, provider name) for every alias, then every listed model, in config order."""
        listed: dict[str, str] = {}
        for name, target in self._aliases.items():
            found = self._lookup(target)
            if found is not None:
                listed[name] = found[0].name
        for model, provider in self._by_model.items():
            listed.setdefault(model, provider.name)
        return list(listed.items())


def _not_found(model: str) -> ModelNotFound:
    return ModelNotFound(
        f"The model `{model}` does not exist or is not served by this gateway.", param="model"
    )
