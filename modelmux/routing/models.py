"""The model map: a requested model name → the group of deployments that serve it.

A deployment is a provider plus the model name sent to it, with weight, priority, prices,
tags and limits. Groups come from ``[[routing.group]]`` (explicit) and from providers'
``models`` lists (implicit: every provider listing a name is a deployment of that name, in
config order); ``provider/model`` is a group of one. Aliases (``[models]``, a group's
``aliases``) give public names to groups. Pure: built once from the config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from modelmux.config.routing import DeploymentConfig, GroupConfig
from modelmux.errors import ModelNotFound

FALLBACK = "*"

PriceOf = Callable[[str], "tuple[float, float] | None"]
"""(input, output) USD per 1k tokens of an upstream model name, or None when unknown: the
spend price table, for deployments whose config sets no price."""


class ProviderRef(Protocol):
    """What routing knows of a provider: its name and the models it lists. The call stage
    holds the provider itself (``providers.base.Provider``); routing never calls it."""

    name: str
    models: list[str]


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """One configured way to serve a model; ``id`` (``provider/model``) keys its live state."""

    provider: ProviderRef
    model: str
    weight: int = 1
    priority: int = 0
    input_cost_per_1k: float = 0.0
    output_cost_per_1k: float = 0.0
    tags: frozenset[str] = frozenset()
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.provider.name}/{self.model}")  # read per request


@dataclass(frozen=True, slots=True)
class Group:
    """The deployments of one public name, with its own strategy and fallback, if any."""

    name: str
    deployments: tuple[DeploymentSpec, ...]
    strategy: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    fallback_group: str | None = None


def _spec(provider: ProviderRef, model: str, config: DeploymentConfig | None = None,
          price_of: PriceOf | None = None) -> DeploymentSpec:
    """A deployment; one whose config gives no price (both 0) takes the price table's."""
    prices = (0.0, 0.0) if config is None else (config.input_cost_per_1k,
                                                config.output_cost_per_1k)
    if prices == (0.0, 0.0) and price_of is not None:
        prices = price_of(model) or prices
    if config is None:
        return DeploymentSpec(provider, model, 1, 0, *prices)
    return DeploymentSpec(provider, model, config.weight, config.priority, *prices,
                          frozenset(config.tags), config.rpm, config.tpm, config.max_concurrent)


class ModelIndex:
    """Resolves model names to groups; lists the public ones."""

    def __init__(self, providers: Iterable[ProviderRef],
                 aliases: Iterable[tuple[str, str, bool]] = (),
                 groups: Iterable[GroupConfig] = (), price_of: PriceOf | None = None,
                 limits: Mapping[str, Mapping[str, int | None]] | None = None) -> None:
        """``aliases`` are (public name, target, ignore_case); the first of a name wins.
        ``groups`` must name configured providers (the config check makes sure). ``price_of``
        prices the deployments whose config sets no price (the ``cost`` strategy's input).
        ``limits`` replaces the ``rpm``/``tpm`` of deployments by id (an operator's runtime
        overrides)."""
        self.providers = {p.name: p for p in providers}
        self.specs: dict[str, DeploymentSpec] = {}
        self.groups: dict[str, Group] = {}
        self._group_aliases: dict[str, str] = {}
        self._listed: dict[str, Group] = {}
        for config in groups:
            specs = []
            for d in config.deployments:
                provider = self.providers.get(d.provider)
                if provider is not None:
                    spec = self.specs.setdefault(f"{provider.name}/{d.model or config.name}",
                                                 _spec(provider, d.model or config.name, d,
                                                       price_of))
                    specs.append(spec)
            group = Group(config.name, tuple(specs), config.strategy, frozenset(config.tags),
                          config.fallback_group)
            self.groups.setdefault(config.name, group)
            for alias in config.aliases:
                self._group_aliases.setdefault(alias, config.name)
        serving: dict[str, list[DeploymentSpec]] = {}
        for provider in self.providers.values():
            for model in provider.models:
                spec = self.specs.setdefault(f"{provider.name}/{model}",
                                             _spec(provider, model, None, price_of))
                listed = serving.setdefault(model, [])
                if spec not in listed:
                    listed.append(spec)
        self._listed = {model: Group(model, tuple(specs)) for model, specs in serving.items()}
        self.configured = dict(self.specs)  # as the config has them, before ``limits``
        if limits:
            self._override(limits)
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

    def _override(self, limits: Mapping[str, Mapping[str, int | None]]) -> None:
        changed: dict[str, DeploymentSpec] = {}
        for ident, fields in limits.items():
            spec = self.specs.get(ident)
            wanted = {k: v for k, v in fields.items() if k in ("rpm", "tpm")}
            if spec is not None and wanted:
                changed[ident] = self.specs[ident] = replace(spec, **wanted)  # type: ignore[arg-type]
        if not changed:
            return

        def swap(group: Group) -> Group:
            return replace(group, deployments=tuple(changed.get(d.id, d)
                                                    for d in group.deployments))
        self.groups = {name: swap(group) for name, group in self.groups.items()}
        self._listed = {name: swap(group) for name, group in self._listed.items()}

    def group_named(self, name: str) -> Group | None:
        """The group a group name, group alias or listed model names; ``provider/model`` is a
        group of one. None if nothing matches."""
        group = self.groups.get(name) or self.groups.get(self._group_aliases.get(name, ""))
        if group is not None:
            return group
        group = self._listed.get(name)
        if group is not None:
            return group
        provider_name, slash, upstream = name.partition("/")
        provider = self.providers.get(provider_name) if slash and upstream else None
        if provider is None:
            return None
        return Group(name, (self.spec(provider, upstream),))

    def spec(self, provider: ProviderRef, model: str) -> DeploymentSpec:
        """The configured deployment of ``model`` on ``provider``, or a plain one."""
        spec = self.specs.get(f"{provider.name}/{model}")
        return spec if spec is not None and spec.provider is provider else _spec(provider, model)

    def group(self, model: str) -> Group:
        """The group serving ``model``.

        Order: a ``[models]`` alias of that exact name, a group name or group alias, a listed
        model, ``provider/model``, an alias matched ignoring case, then the ``*`` alias.

        Raises:
            ModelNotFound: nothing serves the model.
        """
        for target in (self._aliases.get(model), model, self._folded.get(model.casefold()),
                       self._fallback):
            if target is not None:
                group = self.group_named(target)
                if group is not None and group.deployments:
                    return group
        raise ModelNotFound(
            f"The model `{model}` does not exist or is not served by this gateway.", param="model"
        )

    def resolve(self, model: str) -> tuple[Provider, str]:
        """The first deployment of ``model``'s group, as (provider, upstream model).

        Raises:
            ModelNotFound: nothing serves the model.
        """
        first = self.group(model).deployments[0]
        return first.provider, first.model

    def candidates(self, model: str) -> list[tuple[Provider, str]]:
        """Every (provider, upstream model) of ``model``'s group, in config order.

        Raises:
            ModelNotFound: nothing serves the model.
        """
        return [(d.provider, d.model) for d in self.group(model).deployments]

    def public_models(self) -> list[tuple[str, str]]:
        """(name, provider of its first deployment): ``[models]`` aliases, groups and their
        aliases, then listed models, in config order."""
        listed: dict[str, str] = {}
        names = [*self._aliases, *self.groups, *self._group_aliases]
        for name in names:
            target = self._aliases.get(name, name)
            group = self.group_named(target)
            if group is not None and group.deployments:
                listed.setdefault(name, group.deployments[0].provider.name)
        for model, group in self._listed.items():
            listed.setdefault(model, group.deployments[0].provider.name)
        return list(listed.items())
