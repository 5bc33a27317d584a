"""Finding plugins: the ``modelmux.providers`` and ``modelmux.middleware`` entry points.

A plugin is a Python package that declares entry points in one of the two groups; the entry
point's name is what the config names (``[[provider]] type = "echo"``, ``[[middleware]]
name = "redact"``). This module finds and imports them and reads a provider plugin's
``Config``; what the loaded objects must be is checked where they are built
(``modelmux.providers.plugins``, ``modelmux.pipeline.plugins``). See docs/plugins.md.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from msgspec import Struct

PROVIDER_GROUP = "modelmux.providers"
MIDDLEWARE_GROUP = "modelmux.middleware"
_WHAT = {PROVIDER_GROUP: "provider type", MIDDLEWARE_GROUP: "middleware"}


class PluginProviderConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The base of a provider plugin's ``Config``: the fields every ``[[provider]]`` has.

    A plugin subclasses it (``class Config(PluginProviderConfig, frozen=True)``) to add its own
    settings; unknown keys are refused, as for the built-in types.
    """

    type: str
    name: str
    models: list[str]


class PluginError(Exception):
    """A plugin is not installed, cannot be imported, or is not what its group expects."""


def installed(group: str) -> list[str]:
    """The entry point names in ``group``, sorted."""
    return sorted({point.name for point in entry_points(group=group)})


def _entry_point(group: str, name: str) -> EntryPoint:
    found = [point for point in entry_points(group=group) if point.name == name]
    if not found:
        names = ", ".join(installed(group)) or "none"
        raise PluginError(f"no {_WHAT[group]} plugin named {name!r} is installed "
                          f"(installed {group} entry points: {names})")
    return found[0]


def load(group: str, name: str) -> Any:
    """Import the object the entry point ``name`` of ``group`` names.

    Raises:
        PluginError: not installed, or importing it raised (the message names the plugin,
            its entry point and the error).
    """
    point = _entry_point(group, name)
    try:
        return point.load()
    except Exception as exc:
        raise PluginError(f"the {name!r} plugin ({group}: {point.value}) failed to load: "
                          f"{type(exc).__name__}: {exc}") from exc


def provider_config(name: str) -> type[PluginProviderConfig]:
    """The ``Config`` Struct of the provider plugin ``name``.

    Raises:
        PluginError: see ``load``; or the class has no ``Config`` subclassing
            ``PluginProviderConfig``.
    """
    cls = load(PROVIDER_GROUP, name)
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, PluginProviderConfig)):
        raise PluginError(f"the {name!r} plugin ({PROVIDER_GROUP}) has no `Config` class "
                          "subclassing modelmux.plugins.PluginProviderConfig")
    return config
