"""The admin API's gate; ``GET /admin/providers``: providers, their deployments and each one's
live routing state; ``GET /admin/cache`` (response cache stats) and ``DELETE /admin/cache``
(drop every entry).

An admin credential is the ``[admin] key``, or with ``[auth] mode = "keys"`` the master key or
a key whose role is admin; a team_admin key reaches its own team's records only. Without auth
and without ``[admin] key`` the admin API is off (404). No credential is a 401, a credential
that may not act a 403. Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from modelmux.api.responses import send_json
from modelmux.errors import AuthenticationFailed, NotFound, PermissionDenied

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

ADMIN = "admin"
TEAM_ADMIN = "team_admin"


async def admin_scope(app: Services, exchange: Exchange, *, team_admin: bool = False
                      ) -> str | None:
    """Let an admin through (None: every team); with ``team_admin``, a team admin too (its
    team's id).

    Raises:
        NotFound: the admin API is off (no auth, no ``[admin] key``).
        AuthenticationFailed: no credential, or one auth does not know (401).
        RateLimited: the address failed too often.
        PermissionDenied: a credential that may not act here (403).
    """
    if app.auth is not None:
        identity = await app.auth.identify(exchange.headers, exchange.client)
        if identity.role == ADMIN:
            return None
        if team_admin and identity.role == TEAM_ADMIN and identity.team_id is not None:
            return identity.team_id
        raise PermissionDenied(f"This credential (role {identity.role}) may not use "
                               f"{exchange.path}.", code="permission_denied")
    key = app.config.admin.key
    if not key:
        raise NotFound(f"Invalid URL ({exchange.method} {exchange.path}): the admin API is off; "
                       "set [admin] key (or [auth] mode = \"keys\") to turn it on.",
                       code="unknown_url")
    given = exchange.header(b"authorization") or b""
    scheme, _, token = given.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise AuthenticationFailed("The admin API needs `Authorization: Bearer <admin key>`.",
                                   headers=[(b"www-authenticate", b'Bearer realm="modelmux-admin"')])
    if not hmac.compare_digest(token.strip(), key.encode()):
        raise PermissionDenied("That is not the admin key.", code="invalid_admin_key")
    return None


async def providers(app: Services, exchange: Exchange) -> None:
    """Each provider with its deployments: breaker, in flight, TTFT EWMA and limits."""
    await admin_scope(app, exchange)
    deployments = app.router.snapshot()
    out = []
    for provider in app.providers:
        mine = [{"id": ident, **view} for ident, view in deployments.items()
                if view["provider"] == provider.name]
        out.append({"name": provider.name, "type": provider.type, "deployments": mine})
    body = {"object": "list", "strategy": app.router.strategy, "data": out}
    await send_json(exchange, 200, body, [(b"cache-control", b"no-store")])


async def cache(app: Services, exchange: Exchange) -> None:
    """``GET``: the response cache's backend, entries and bytes; ``DELETE``: clear it.

    Raises:
        NotFound: the response cache is off.
    """
    await admin_scope(app, exchange)
    responses = app.cache
    if responses is None:
        raise NotFound("The response cache is off; set [cache] enabled = true.",
                       code="cache_disabled")
    if exchange.method == "DELETE":
        body: dict[str, object] = {"cleared": await responses.clear()}
    else:
        body = responses.stats()
    await send_json(exchange, 200, body, [(b"cache-control", b"no-store")])
