"""Provider types from plugins: built from their ``[[provider]]`` table, behind a guard.

A ``modelmux.providers`` entry point names a ``Provider`` subclass with a ``Config`` Struct
(a ``PluginProviderConfig``) and a constructor ``(config, pool)``. The guard turns anything but
a ``ModelMuxError`` the plugin raises, and an answer of the wrong type, into a 500 that names
it (``PluginFailed``): before the first streamed byte the client gets it as a JSON error, after
it as the stream's error event. It keeps the plugin's ``retry`` policy.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from modelmux.config import plugins
from modelmux.config.plugins import PluginProviderConfig
from modelmux.config.problems import ConfigError
from modelmux.errors import ModelMuxError, PluginFailed
from modelmux.providers.base import CallStats, ChatCall, EmbedCall, Provider, TextCall
from modelmux.providers.token_count import Counted, CountInput
from modelmux.upstream import ConnectionPool

log = logging.getLogger("modelmux.providers")

C = TypeVar("C", ChatCall, EmbedCall, TextCall)

_OPTIONAL = ("embed", "complete_text", "stream_text", "count_tokens")
"""Provider methods with a default; the guard runs its own default (naming the entry point)
for those a plugin leaves alone."""


class GuardedProvider(Provider):
    """A plugin's provider; ``type`` is its entry point name, ``plugin`` the instance."""

    type = "plugin"

    def __init__(self, plugin: Provider, type_name: str) -> None:
        super().__init__(plugin.name, plugin.models)
        self.plugin = plugin
        self.type = type_name  # type: ignore[misc]  # the entry point name, per instance
        self.retry = plugin.retry
        self._own = frozenset(name for name in _OPTIONAL
                              if getattr(type(plugin), name) is not getattr(Provider, name))

    async def complete(self, call: ChatCall) -> bytes:
        return await self._answer(self.plugin.complete, call, "complete")

    def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        return self._pieces(self.plugin.stream, call, "stream")

    async def embed(self, call: EmbedCall) -> bytes:
        if "embed" not in self._own:
            return await super().embed(call)
        return await self._answer(self.plugin.embed, call, "embed")

    async def complete_text(self, call: TextCall) -> bytes:
        if "complete_text" not in self._own:
            return await super().complete_text(call)
        return await self._answer(self.plugin.complete_text, call, "complete_text")

    def stream_text(self, call: TextCall) -> AsyncGenerator[bytes, None]:
        if "stream_text" not in self._own:
            return super().stream_text(call)
        return self._pieces(self.plugin.stream_text, call, "stream_text")

    def speaks_messages(self, model: str) -> bool:
        return self._flag(self.plugin.speaks_messages, model, "speaks_messages")

    def counts_tokens(self, model: str) -> bool:
        return self._flag(self.plugin.counts_tokens, model, "counts_tokens")

    async def count_tokens(self, prompt: CountInput, model: str, stats: CallStats) -> Counted:
        if "count_tokens" not in self._own:
            return await super().count_tokens(prompt, model, stats)
        try:
            counted = await self.plugin.count_tokens(prompt, model, stats)
        except ModelMuxError:
            raise
        except Exception as exc:  # noqa: BLE001  # a plugin's fault becomes PluginFailed
            raise self._failed("counting tokens", exc) from None
        if not isinstance(counted, Counted):
            raise self._wrong("counting tokens", "count_tokens", counted, "Counted")
        return counted

    async def _answer(self, method: Callable[[C], Awaitable[bytes]], call: C, what: str) -> bytes:
        try:
            answer = await method(call)
        except ModelMuxError:
            raise
        except Exception as exc:  # noqa: BLE001  # a plugin's fault becomes PluginFailed
            raise self._failed(f"on request {call.request_id}", exc) from None
        if type(answer) is not bytes:
            raise self._wrong(f"on request {call.request_id}", what, answer, "bytes")
        return answer

    async def _pieces(self, method: Callable[[C], AsyncGenerator[bytes, None]], call: C,
                      what: str) -> AsyncGenerator[bytes, None]:
        try:
            chunks = method(call)
            try:
                async for chunk in chunks:  # type: ignore[union-attr]
                    if type(chunk) is not bytes:
                        raise self._wrong(f"on request {call.request_id}", what, chunk, "bytes")
                    yield chunk
            finally:
                await chunks.aclose()  # type: ignore[union-attr]
        except ModelMuxError:
            raise
        except Exception as exc:  # noqa: BLE001  # a plugin's fault becomes PluginFailed
            raise self._failed(f"on request {call.request_id}", exc) from None

    def _flag(self, method: Callable[[str], bool], model: str, what: str) -> bool:
        try:
            flag = method(model)
        except Exception as exc:  # noqa: BLE001  # a plugin's fault becomes PluginFailed
            raise self._failed(f"in {what}({model!r})", exc) from None
        if type(flag) is not bool:
            raise self._wrong(f"in {what}({model!r})", what, flag, "bool")
        return flag

    def _failed(self, where: str, exc: Exception) -> PluginFailed:
        log.error("plugin %s (provider %s) failed %s", self.type, self.name, where, exc_info=exc)
        return PluginFailed.naming(self.type, exc)

    def _wrong(self, where: str, what: str, value: object, expected: str) -> PluginFailed:
        log.error("plugin %s (provider %s) failed %s: %s gave %s, not %s", self.type, self.name,
                  where, what, type(value).__name__, expected)
        return PluginFailed.returning(self.type, what, value, expected)

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
    except Exception as exc:  # noqa: BLE001  # any start-up fault is a config problem
        raise ConfigError(f"{where}: the {config.type!r} plugin failed to start: "
                          f"{type(exc).__name__}: {exc}") from None
    if not isinstance(provider, Provider):
        raise ConfigError(f"{where}: the {config.type!r} plugin built {provider!r}, not a Provider")
    return GuardedProvider(provider, config.type)
