"""The routes table: path → method → route function."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from modelmux.api import admin, chat, info, metrics

if TYPE_CHECKING:
    from modelmux.api.app import App
    from modelmux.server.exchange import Exchange

Route = Callable[["App", "Exchange"], Awaitable[None]]

ROUTES: dict[str, dict[str, Route]] = {
    "/v1/chat/completions": {"POST": chat.create_chat_completion},
    "/v1/models": {"GET": info.list_models},
    "/health": {"GET": info.health},
    "/metrics": {"GET": metrics.scrape},
    "/admin/providers": {"GET": admin.providers},
}
