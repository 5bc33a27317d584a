"""Middleware from plugins: each enabled ``[[middleware]]`` table built into a pipeline stage.

A ``modelmux.middleware`` entry point names a factory (usually a ``Stage`` subclass) called
with the table's ``options`` as a dict; it returns a ``Stage`` of kind ``middleware``, which is
then marked as a plugin (its faults become a 500 naming it) and named after the entry point.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelmux.config import plugins
from modelmux.config.problems import ConfigError
from modelmux.config.schema import MiddlewareConfig
from modelmux.pipeline.stage import Stage


def build_middleware(config: MiddlewareConfig) -> Stage:
    """The stage of one ``[[middleware]]`` table.

    Raises:
        ConfigError: the plugin cannot be loaded, its factory raised, or it did not return a
            middleware ``Stage`` (each message names the plugin).
    """
    name = config.name
    try:
        factory = plugins.load(plugins.MIDDLEWARE_GROUP, name)
    except plugins.PluginError as exc:
        raise ConfigError(str(exc)) from None
    try:
        stage = factory(dict(config.options))
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"the {name!r} middleware plugin failed to start: "
                          f"{type(exc).__name__}: {exc}") from None
    if not isinstance(stage, Stage) or stage.kind != "middleware":
        raise ConfigError(f"the {name!r} middleware plugin returned {stage!r}, not a "
                          "modelmux Stage of kind \"middleware\"")
    stage.name = name
    stage.plugin = True
    return stage


def build_middlewares(configs: Sequence[MiddlewareConfig]) -> list[Stage]:
    """The enabled ``[[middleware]]`` stages, in config order.

    Raises:
        ConfigError: see ``build_middleware``.
    """
    return [build_middleware(config) for config in configs if config.enabled]
