"""Other spellings of today's keys, rewritten to them in each file layer before merging.

These are the spellings ModelMux's roadmap uses (docs/configuration.md, "Other spellings"):
a provider's ``model = "m"`` is ``models = ["m"]``; the strategy ``cost_optimized`` is
``cost``; ``[routing] fallback = true|false`` is ``[routing.fallback] enabled = true|false``.
Rewriting per layer keeps each origin (so problems and ``config show`` name the line as
written) and lets ``fallback = false`` merge with a lower layer's ``[routing.fallback]`` table.
"""

from __future__ import annotations

from typing import Any

from modelmux.config.layers import Layer, origin_of
from modelmux.config.problems import KeyPath, Problem

STRATEGY_SPELLINGS = {"cost_optimized": "cost"}
"""Another name of a strategy -> the strategy it means."""


def expand_shorthands(layer: Layer) -> list[Problem]:
    """Rewrite ``layer`` in place to today's keys; problems for spellings that cannot be."""
    data = layer.data
    problems: list[Problem] = []

    def add(message: str, path: KeyPath) -> None:
        problems.append(Problem(message, path, origin_of(layer.origins, path)))

    providers = data.get("provider")
    for index, provider in enumerate(providers if isinstance(providers, list) else []):
        if isinstance(provider, dict) and "model" in provider:
            problem = _one_model(layer, provider, ("provider", index))
            if problem is not None:
                add(problem, ("provider", index, "model"))
    routing = data.get("routing")
    if not isinstance(routing, dict):
        return problems
    _strategy(routing)
    groups = routing.get("group")
    for group in groups if isinstance(groups, list) else []:
        if isinstance(group, dict):
            _strategy(group)
    fallback = routing.get("fallback")
    if isinstance(fallback, bool):
        routing["fallback"] = {"enabled": fallback}
        here = ("routing", "fallback")
        if here in layer.origins:
            layer.origins[(*here, "enabled")] = layer.origins[here]
    elif "fallback" in routing and not isinstance(fallback, dict):
        add(f"expected true, false or a [routing.fallback] table, got {fallback!r}",
            ("routing", "fallback"))
        del routing["fallback"]
    return problems


def _one_model(layer: Layer, provider: dict[str, Any], here: KeyPath) -> str | None:
    """``model = X`` -> ``models = [X]`` (the schema then checks X is a string); a message
    when ``models`` is given too."""
    if "models" in provider:
        del provider["model"]
        return "give either `model` (one model) or `models` (a list), not both"
    provider["models"] = [provider.pop("model")]
    origin = layer.origins.pop((*here, "model"), None)
    if origin is not None:
        layer.origins[(*here, "models")] = origin
    return None


def _strategy(table: dict[str, Any]) -> None:
    strategy = table.get("strategy")
    if isinstance(strategy, str) and strategy in STRATEGY_SPELLINGS:
        table["strategy"] = STRATEGY_SPELLINGS[strategy]
