"""Provider types from plugins: built from their ``[[provider]]`` table, behind a guard.

A ``modelmux.providers`` entry point names a ``Provider`` subclass with a ``Config`` Struct
(a ``PluginProviderConfig``) and a constructor ``(config, pool)``. The guard turns anything but
a ``ModelMuxError`` the plugin raises into a 500 that names it (``PluginFailed``): before the
first streamed byte the client gets it as a JSON error, after it as the stream's error event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

from modelmux.config import plugins
from modelmux.config.plugins import PluginProviderConfig
from modelmux.config.problems import ConfigError
from modelmux.errors import ModelMuxError, PluginFailed
from modelmux.providers.base import ChatCall, Provider
from modelmux.upstream import ConnectionPool

log = logging.getLogger("modelmux.providers")


class GuardedProvider(Provider):
    """A plugin's provider; ``type`` is its entry point name, ``plugin`` the instance."""

    type = "plugin"

    def __init__(self, plugin: Provider, type_name: str) -> None:
        super().__init__(plugin.name, plugin.models)
        self.plugin = plugin
        self.type = type_name  # type: ignore[misc]  # the entry point name, per instance

    async def complete(self, call: ChatCall) -> bytes:
        try:
            return await self.plugin.complete(call)
        except ModelMuxError:
            raise
        except Exception as exc:
            raise self._failed(call, exc) from None

    async def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        try:
            chunks = self.plugin.stream(call)  # a plugin's stream is its pieces
            try:
                async for chunk in chunks:  # type: ignore[union-attr]
                    yield chunk
            finally:
                await chunks.aclose()  # type: ignore[union-attr]
        except ModelMuxError:
            raise
        except Exception as exc:
            raise self._failed(call, exc) from None

    def _failed(self, call: ChatCall, exc: Exception) -> PluginFailed:
        log.error("plugin %s (provider %s) failed on request %s", self.type, self.name,
                  call.request_id, exc_info=exc)
        return PluginFailed.naming(self.type, exc)

    async def aclose(self) -> None:
        await self.plugin.aclose()


def build_plugin_provider(config: PluginProviderConfig, pool: ConnectionPool | None) -> Provider:
    """The guarded provider of a plugin type's ``[[provider]]`` table.

    Raises:
        ConfigError: the plugin cannot be loaded, is not a ``Provider`` subclass, or its
            constructor raised (each message names the plugin).
    """
    where = f"provider {config.name!r}"
    try:
        cls = plugins.load(plugins.PROVIDER_GROUP, config.type)
    except plugins.PluginError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigError(f"{where}: the {config.type!r} plugin ({plugins.PROVIDER_GROUP}) is "
                          f"not a modelmux Provider subclass: {cls!r}")
    try:
        provider = cls(config, pool)  # type: ignore[call-arg]
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{where}: the {config.type!r} plugin failed to start: "
                          f"{type(exc).__name__}: {exc}") from None
    if not isinstance(provider, Provider):
        raise ConfigError(f"{where}: the {config.type!r} plugin built {provider!r}, not a Provider")
    return GuardedProvider(provider, config.type)
