"""What a plugin imports: the types of the two plugin interfaces (docs/plugins.md).

A middleware plugin is a ``Stage`` factory (entry point group ``modelmux.middleware``); a
provider plugin is a ``Provider`` subclass with a ``Config`` (group ``modelmux.providers``).
Nothing in ModelMux imports this module: it only gathers the names plugins need.
"""

from __future__ import annotations

from modelmux.config.plugins import MIDDLEWARE_GROUP, PROVIDER_GROUP, PluginProviderConfig
from modelmux.errors import (
    InvalidRequest,
    ModelMuxError,
    PermissionDenied,
    PluginFailed,
    UpstreamError,
)
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Stage
from modelmux.providers.base import ChatCall, EmbedCall, Provider, RetryPolicy, TextCall
from modelmux.providers.token_count import Counted, CountInput, CountUnavailable
from modelmux.upstream import ConnectionPool

__all__ = [
    "MIDDLEWARE_GROUP",
    "PROVIDER_GROUP",
    "ChatCall",
    "ConnectionPool",
    "CountInput",
    "CountUnavailable",
    "Counted",
    "EmbedCall",
    "InvalidRequest",
    "ModelMuxError",
    "PermissionDenied",
    "PluginFailed",
    "PluginProviderConfig",
    "Provider",
    "RequestContext",
    "RetryPolicy",
    "Stage",
    "TextCall",
    "UpstreamError",
]
