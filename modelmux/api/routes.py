"""The routes table: path → method → route function, and prefixes that take an id."""

from __future__ import annotations

from modelmux.api import (
    admin,
    admin_tenancy,
    chat,
    completions,
    count_tokens,
    dashboard,
    embeddings,
    events,
    info,
    messages,
    metrics,
)
from modelmux.api.services import Route

ROUTES: dict[str, dict[str, Route]] = {
    "/v1/chat/completions": {"POST": chat.create_chat_completion},
    "/v1/completions": {"POST": completions.create_completion},
    "/v1/embeddings": {"POST": embeddings.create_embeddings},
    "/v1/messages": {"POST": messages.create_message},
    "/v1/messages/count_tokens": {"POST": count_tokens.count_tokens},
    "/v1/models": {"GET": info.list_models},
    "/health": {"GET": info.health},
    "/metrics": {"GET": metrics.scrape},
    "/admin/providers": {"GET": admin.providers},
    "/admin/breaker": {"POST": admin.set_breaker},
    "/admin/limits": {"POST": admin.set_limits},
    "/admin/config": {"GET": admin.config},
    "/admin/events": {"GET": events.stream},
    "/dashboard": {"GET": dashboard.index},
    "/dashboard/": {"GET": dashboard.index},
    "/dashboard/session": {"GET": dashboard.session, "POST": dashboard.session},
    "/dashboard/signout": {"POST": dashboard.sign_out},
    "/admin/usage": {"GET": admin.usage},
    **{f"/admin/{kind}": {"GET": admin_tenancy.collection, "POST": admin_tenancy.collection}
       for kind in ("teams", "users", "keys")},
    "/admin/cache": {"GET": admin.cache, "DELETE": admin.cache},
}

PREFIX_ROUTES: dict[str, dict[str, Route]] = {
    info.MODEL_PREFIX: {"GET": info.retrieve_model},
    dashboard.PREFIX: {"GET": dashboard.asset},
    **{prefix: {method: admin_tenancy.item for method in ("GET", "PATCH", "DELETE", "POST")}
       for prefix in admin_tenancy.PREFIXES},
}
"""Paths that end in an id (which may hold ``/``): ``prefix + id``, labelled ``prefix{id}``."""


def match(path: str) -> tuple[str, dict[str, Route]] | None:
    """The route label (bounded: an id is never part of it) and the methods for ``path``."""
    methods = ROUTES.get(path)
    if methods is not None:
        return path, methods
    for prefix, methods in PREFIX_ROUTES.items():
        if path.startswith(prefix) and len(path) > len(prefix):
            return prefix + "{id}", methods
    return None
